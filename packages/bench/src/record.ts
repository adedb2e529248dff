// A command's start-up recorded as a workload, the way a user records a profile: the image
// mounted with `seekable mount --record FILE` (no cache, straight to the registry: this is
// set-up, not measured), the command run in a chroot of the mount, the mount stopped. The
// file it wrote lists the files opened, in first-access order: the workload's paths and
// the profile that `mount --prefetch FILE` is given.
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { SeekableError } from "@seekable/format";
import { type SeekableCommand, startSeekableMount } from "./processes.js";
import { runInRoot } from "./rootfs.js";

export interface RecordedStart {
  /** Files opened, in first-access order. */
  paths: string[];
  /** The file `mount --record` wrote (kept for `mount --prefetch`). */
  profile: string;
}

export interface RecordOptions {
  /** Where the mount point and the profile go (kept: the profile is used later). */
  dir: string;
  creds?: string;
  platform?: string;
}

/** Records `cmd` started from a mount of `ref` (docker://…); fails if it exits non-zero. */
export async function recordStart(
  seekable: SeekableCommand,
  ref: string,
  cmd: string,
  opts: RecordOptions,
): Promise<RecordedStart> {
  const mnt = join(opts.dir, "mnt");
  const profile = join(opts.dir, "profile.txt");
  await mkdir(mnt, { recursive: true });
  const extra = ["--no-cache", "--record", profile];
  if (opts.creds) extra.push("--creds", opts.creds);
  if (opts.platform) extra.push("--platform", opts.platform);
  const m = await startSeekableMount(seekable, ref, mnt, extra);
  let r: Awaited<ReturnType<typeof runInRoot>>;
  try {
    r = await runInRoot(mnt, cmd);
  } finally {
    await m.stop();
  }
  if (r.code !== 0)
    throw new SeekableError(
      `--run ${JSON.stringify(cmd)}: exited with ${r.code ?? r.signal}: ${r.stderr.trim().split("\n").slice(-1)[0] ?? ""}`,
      "system",
    );
  const paths = (await readFile(profile, "utf8")).split("\n").filter((l) => l !== "");
  return { paths, profile };
}
