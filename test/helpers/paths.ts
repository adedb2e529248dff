// Well-known paths shared by the cross-package tests and the global setup.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Git-ignored scratch space for tests (fixtures, temp dirs). */
export const WORK_DIR = join(ROOT, ".work");
/** Fixture tars written by `estargz-ref fixtures`, regenerated when the tool changes. */
export const FIXTURES_DIR = join(WORK_DIR, "fixtures");
export const CLI = join(ROOT, "packages/cli/dist/main.js");
export const REFERENCE_BUILD_SCRIPT = join(ROOT, "tools/reference/build.sh");
export const REFERENCE_BIN = join(ROOT, "tools/reference/bin/estargz-ref");

/** The reference tool's path; throws a clear error when the global setup could not build it. */
export function referenceBinary(): string {
  if (!existsSync(REFERENCE_BIN)) {
    throw new Error(
      `${REFERENCE_BIN} is missing: the global setup could not build it (run ${REFERENCE_BUILD_SCRIPT}; it needs golang-go and golang-github-containerd-stargz-snapshotter-dev)`,
    );
  }
  return REFERENCE_BIN;
}

/** The seekable CLI entry point; throws when the workspace is not built. */
export function seekableCli(): string {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  return CLI;
}

/** A fixture file's path; throws when the global setup did not write it. */
export function fixture(name: string): string {
  const p = join(FIXTURES_DIR, name);
  if (!existsSync(p))
    throw new Error(`fixture ${p} is missing: the global setup did not generate it`);
  return p;
}
