import { mountTarget } from "@seekable/mount";
import { CliError } from "../errors.js";
import { onInterrupt } from "../output.js";
import { openSession, type ReadingFlags } from "../target.js";

export interface MountFlags extends ReadingFlags {
  record?: string;
  backgroundFetch?: boolean;
}

/**
 * `seekable mount REF DIR`: runs in the foreground until SIGINT/SIGTERM/SIGHUP, then
 * unmounts, writes --record and --stats, and exits 0.
 */
export async function mountCommand(ref: string, dir: string, flags: MountFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`seekable: mount: ${line}\n`);
  if (flags.backgroundFetch && flags.cache === false) {
    log("--background-fetch is ignored with --no-cache (nowhere to keep the image)");
    flags.backgroundFetch = false;
  }
  const session = await openSession(ref, flags);
  let mounted: Awaited<ReturnType<typeof mountTarget>>;
  try {
    mounted = await mountTarget(session.target, dir, {
      record: flags.record,
      backgroundFetch: flags.backgroundFetch,
      log,
    });
  } catch (e) {
    await session.finish();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new CliError(`${dir}: no such directory`, true);
    throw new CliError(`cannot mount at ${dir}: ${err.message ?? String(e)}`, true);
  }
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ mounted: ref, dir: mounted.dir, kind: session.target.kind, layers: session.target.layers.length })}\n`,
    );
  } else process.stdout.write(`mounted ${ref} at ${mounted.dir}\n`);

  // The process stays up while the kernel may call in; a signal ends it cleanly.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolveStop) => {
    onInterrupt(async () => {
      try {
        await Promise.race([
          mounted.unmount(),
          new Promise((_, rej) =>
            setTimeout(() => rej(new Error("unmount did not finish in 20 s")), 20_000).unref(),
          ),
        ]);
        await session.finish();
        clearInterval(keepAlive);
        process.exit(0);
      } catch (e) {
        log(`${(e as Error).message}`);
        process.exit(1);
      }
    });
    void resolveStop;
  });
}
