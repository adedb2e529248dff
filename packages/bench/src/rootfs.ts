// Running a program from a root file system (an extracted image, a seekable mount, an
// overlay of the reference store's layers) the way a container runtime would at its
// simplest: /dev and /proc made available where the image has the directories, then
// `chroot ROOT /bin/sh -c CMD`. Needs root.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { SeekableError } from "@seekable/format";
import { readInRoot } from "./extract.js";

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 4,000 characters of stderr (for error messages). */
  stderr: string;
}

/** Runs `file args` to completion; stdout is discarded, stderr's tail kept. */
export function runProcess(
  file: string,
  args: readonly string[],
  opts: { timeoutMs?: number } = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: opts.timeoutMs,
    });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err = (err + d).slice(-4000);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stderr: err }));
  });
}

/** `file args` must exit 0; otherwise an Error with the first line of its stderr. */
export async function mustRun(file: string, args: readonly string[]): Promise<void> {
  const r = await runProcess(file, args);
  if (r.code !== 0)
    throw new SeekableError(
      `${file} ${args.join(" ")} exited ${r.code ?? r.signal}: ${r.stderr.trim().split("\n")[0] ?? ""}`,
      "system",
    );
}

/**
 * Binds /dev (recursively) and mounts a fresh /proc into `root` where the image has those
 * directories; returns the undo (lazy unmounts, innermost first).
 */
export async function bindSystemDirs(root: string): Promise<() => Promise<void>> {
  const done: string[] = [];
  for (const [d, args] of [
    ["dev", ["--rbind", "/dev"]],
    ["proc", ["-t", "proc", "proc"]],
  ] as const) {
    const target = join(root, d);
    if (!(await stat(target).catch(() => undefined))?.isDirectory()) continue;
    if ((await runProcess("mount", [...args, target])).code === 0) done.unshift(target);
  }
  return async () => {
    for (const t of done) await runProcess("umount", ["-l", t]);
  };
}

/** Runs `/bin/sh -c cmd` in a chroot of `root` with /dev and /proc bound; its exit code. */
export async function runInRoot(root: string, cmd: string): Promise<ProcessResult> {
  const unbind = await bindSystemDirs(root);
  try {
    return await runProcess("chroot", [root, "/bin/sh", "-c", cmd], { timeoutMs: 10 * 60_000 });
  } finally {
    await unbind();
  }
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** sha256 of each image path read from `root` (symlinks resolved inside it), in order. */
export async function hashInRoot(root: string, paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let data: Buffer;
    try {
      data = await readInRoot(root, p);
    } catch (e) {
      throw new SeekableError(
        `${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        "system",
      );
    }
    out.push(sha256(data));
  }
  return out;
}

/** Reads each image path from `root` in order, one after another (a path-list workload). */
export async function readAllInRoot(root: string, paths: string[]): Promise<void> {
  for (const p of paths) {
    try {
      await readInRoot(root, p);
    } catch (e) {
      throw new SeekableError(
        `${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        "system",
      );
    }
  }
}
