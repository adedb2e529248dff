// tsc does not set the executable bit on the CLI entry point; npm links it as `seekable`.
import { chmodSync } from "node:fs";

chmodSync(new URL("../packages/cli/dist/main.js", import.meta.url), 0o755);
