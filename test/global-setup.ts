// Shared, expensive fixtures are prepared once per test run:
// - the reference tool (tools/reference/build.sh: Go, offline, skipped when up to date);
// - the fixture tars it writes (`estargz-ref fixtures`), cached in .work/fixtures and
//   regenerated only when the tool binary changes.
// A missing Go toolchain is reported here and fails only the tests that need the reference.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { FIXTURES_DIR, REFERENCE_BIN, REFERENCE_BUILD_SCRIPT, WORK_DIR } from "./helpers/paths.js";

function buildReference(): boolean {
  const r = spawnSync(REFERENCE_BUILD_SCRIPT, [], { encoding: "utf8" });
  if (r.status !== 0 || !existsSync(REFERENCE_BIN)) {
    process.stderr.write(
      `global setup: cannot build the reference tool (tests needing it will fail):\n${r.stderr || r.error?.message || ""}\n`,
    );
    return false;
  }
  return true;
}

function generateFixtures(): void {
  const st = statSync(REFERENCE_BIN);
  const stamp = `${st.size}:${st.mtimeMs}`;
  const stampFile = join(FIXTURES_DIR, ".stamp");
  if (existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return;
  mkdirSync(WORK_DIR, { recursive: true });
  const tmp = `${FIXTURES_DIR}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(REFERENCE_BIN, ["fixtures", tmp], { encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`estargz-ref fixtures failed: ${r.stderr || r.error?.message}`);
  }
  writeFileSync(join(tmp, ".stamp"), stamp);
  // Swap directories so a concurrent reader never sees a half-written fixture set.
  const old = `${FIXTURES_DIR}.old-${process.pid}`;
  if (existsSync(FIXTURES_DIR)) renameSync(FIXTURES_DIR, old);
  renameSync(tmp, FIXTURES_DIR);
  rmSync(old, { recursive: true, force: true });
}

export default async function setup(): Promise<void> {
  if (buildReference()) generateFixtures();
}
