import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { SeekableError } from "@seekable/format";

const exec = promisify(execFile);

/**
 * A FUSE mount whose process died (SIGKILL) leaves DIR answering ENOTCONN ("Transport
 * endpoint is not connected") to what reaches the dead server. `stat` alone does not tell:
 * the kernel may answer it from attributes cached for an hour, so a directory read asks too.
 */
async function isStale(dir: string): Promise<boolean> {
  for (const probe of [() => stat(dir), () => readdir(dir)]) {
    try {
      await probe();
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ENOTCONN";
    }
  }
  return false;
}

/**
 * Detects dead mounts at DIR and detaches them lazily (`fusermount -u -z`, else `umount -l`),
 * as many as are stacked there. Returns whether one was cleared.
 */
export async function clearStaleMount(dir: string): Promise<boolean> {
  let cleared = false;
  for (let round = 0; round < 8 && (await isStale(dir)); round++) {
    await detachStale(dir);
    cleared = true;
  }
  return cleared;
}

async function detachStale(dir: string): Promise<void> {
  const attempts: [string, string[]][] = [
    ["fusermount", ["-u", "-z", dir]],
    ["fusermount3", ["-u", "-z", dir]],
    ["umount", ["-l", dir]],
  ];
  let last: unknown;
  for (const [cmd, args] of attempts) {
    try {
      await exec(cmd, args);
      return;
    } catch (e) {
      last = e;
    }
  }
  throw new SeekableError(
    `${dir}: a stale FUSE mount is left there and could not be cleared (${(last as Error).message.trim()}): run fusermount -u -z ${dir}`,
    "system",
  );
}

/** Detaches the mount at DIR (lazily: processes still inside keep what they hold). */
export async function detach(dir: string): Promise<void> {
  try {
    await exec("fusermount", ["-u", "-z", dir]);
  } catch {
    await exec("umount", ["-l", dir]).catch(() => {});
  }
}
