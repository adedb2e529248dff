import { CliError } from "./errors.js";
import { onInterrupt } from "./output.js";

/**
 * Keeps a FUSE file system in the foreground while the kernel may call in. On SIGINT,
 * SIGTERM or SIGHUP: unmount (20 s at most), `finish` (statistics, connections), exit 0; a
 * failure is one line and exit 1.
 */
export function serveUntilInterrupted(
  unmount: () => Promise<void>,
  finish: () => Promise<void>,
  log: (line: string) => void,
): Promise<never> {
  const keepAlive = setInterval(() => {}, 1 << 30);
  onInterrupt(async () => {
    try {
      await Promise.race([
        unmount(),
        new Promise((_, rej) =>
          setTimeout(
            () => rej(new CliError("unmount did not finish in 20 s", true, { kind: "system" })),
            20_000,
          ).unref(),
        ),
      ]);
      await finish();
      clearInterval(keepAlive);
      process.exit(0);
    } catch (e) {
      log(`${(e as Error).message}`);
      process.exit(1);
    }
  });
  return new Promise<never>(() => {});
}
