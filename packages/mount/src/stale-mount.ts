import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { promisify } from "node:util";

const exec = promisify(execFile);

/**
 * A FUSE mount whose process died (SIGKILL) leaves DIR answering ENOTCONN ("Transport
 * endpoint is not connected"). Detects that and detaches the dead mount lazily
 * (`fusermount -u -z`, else `umount -l`). Returns whether one was cleared.
 */
export async function clearStaleMount(dir: string): Promise<boolean> {
  try {
    await stat(dir);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOTCONN") return false;
  }
  const attempts: [string, string[]][] = [
    ["fusermount", ["-u", "-z", dir]],
    ["fusermount3", ["-u", "-z", dir]],
    ["umount", ["-l", dir]],
  ];
  let last: unknown;
  for (const [cmd, args] of attempts) {
    try {
      await exec(cmd, args);
      return true;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(
    `${dir}: a stale FUSE mount is left there and could not be cleared (${(last as Error).message.trim()}): run fusermount -u -z ${dir}`,
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
