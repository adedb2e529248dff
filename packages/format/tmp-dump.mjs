import { serializeToc, parseToc } from "@seekable/format";
import { writeFileSync } from "node:fs";
