import { writeFileSync } from "node:fs";
import { parseToc, serializeToc } from "@seekable/format";
