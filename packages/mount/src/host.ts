import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { errorLine, SeekableError } from "@seekable/format";
import type { FuseOptions, Operations } from "fuse-native";
import { LayerFuse, layerFuseOptions } from "./fuse-setup.js";
import { clearStaleMount, detach } from "./stale-mount.js";

/** An error's message on one line (format's errorLine). */
export const describe = errorLine;

/** A log that says each line once per window (5 s), not once per kernel request. */
export class LineLog {
  private readonly said = new Map<string, number>();

  constructor(
    private readonly log: (line: string) => void,
    private readonly windowMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  report(line: string): void {
    const at = this.now();
    if ((this.said.get(line) ?? Number.NEGATIVE_INFINITY) > at - this.windowMs) return;
    this.said.set(line, at);
    this.log(line);
  }
}

export interface HostOptions {
  /** The file system's name in /proc/mounts. */
  fsname: string;
  /** libfuse `-o` options beyond the shared ones (ro, use_ino, negative_timeout…). */
  extra: string[];
  /** fuse-native options over layerFuseOptions (defaultPermissions…). */
  fuse?: Partial<FuseOptions>;
  /** One line for the user: cleared stale mounts, unmount failures. */
  log(line: string): void;
  /** Before the kernel lets go (stop background work). */
  beforeUnmount?(): void;
  /** After the mount is gone (write a record). */
  afterUnmount?(): Promise<void>;
}

export interface Host {
  readonly dir: string;
  /** Detaches the mount, running the hooks once. Idempotent. */
  unmount(): Promise<void>;
}

/**
 * The one FUSE host of the image mount, the layer store and the snapshotter's store: clears
 * dead mounts left at DIR by a killed server, checks DIR, mounts `ops`, and unmounts once,
 * detaching lazily whatever fuse-native could not (a busy mount) so nothing is left behind.
 */
export async function hostFuse(dirArg: string, ops: Operations, opts: HostOptions): Promise<Host> {
  const dir = resolve(dirArg);
  if (await clearStaleMount(dir)) opts.log(`${dir}: cleared a stale mount left by a dead process`);
  const st = await stat(dir);
  if (!st.isDirectory()) throw new SeekableError(`${dir}: not a directory`, "usage");
  const fuse = new LayerFuse(
    dir,
    ops,
    { ...layerFuseOptions(opts.fsname), ...opts.fuse },
    opts.extra,
  );
  await new Promise<void>((res, rej) => fuse.mount((err) => (err ? rej(err) : res())));
  let unmounting: Promise<void> | undefined;
  return {
    dir,
    unmount() {
      unmounting ??= (async () => {
        opts.beforeUnmount?.();
        await new Promise<void>((res) =>
          fuse.unmount((err) => {
            if (err) opts.log(`${dir}: unmount: ${describe(err)}`);
            res();
          }),
        );
        await clearStaleMount(dir).catch(() => detach(dir));
        await opts.afterUnmount?.();
      })();
      return unmounting;
    },
  };
}
