import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { OpenedTarget } from "@seekable/reader";
import { Inodes } from "./attr.js";
import { ChunkPool } from "./chunks.js";
import { Content } from "./content.js";
import { fuseOperations } from "./fuse-ops.js";
import { LayerFuse, layerFuseOptions } from "./fuse-setup.js";
import { type GuessOptions, guessers } from "./guess/guessers.js";
import { Guessing } from "./guess/guessing.js";
import {
  backgroundFetch,
  PrioritizedPrefetch,
  ProfilePrefetch,
  type ProfilePrefetchResult,
} from "./prefetch.js";
import { AccessRecorder } from "./record.js";
import { clearStaleMount, detach } from "./stale-mount.js";

export interface MountOptions extends GuessOptions {
  /** Write the regular files opened, in first-access order, to this file at unmount. */
  record?: string;
  /** Fetch every chunk not yet cached while no read is waiting. */
  backgroundFetch?: boolean;
  /** Bytes fetched ahead of sequential reads (default 8 MiB). */
  readAhead?: number;
  /**
   * `--prefetch`: the paths of a profile (first-access order), fetched at mount. A promise,
   * so a profile looked up in the registry does not delay the mount; undefined: none.
   */
  prefetch?: Promise<string[] | undefined>;
  /** One line for the user (stderr): failed reads, cleared stale mounts. */
  log(line: string): void;
}

export interface MountedImage {
  readonly dir: string;
  /** Settles when the prioritized region of every layer has been fetched (or failed). */
  readonly prioritized: Promise<void>;
  /**
   * Settles when the profile of `prefetch` has been fetched: undefined without one; rejects
   * when it does not fit the image or a fetch failed (reads then fetch on demand).
   */
  readonly profiled: Promise<ProfilePrefetchResult | undefined>;
  /** Detaches the mount, stops background work and writes the record. Idempotent. */
  unmount(): Promise<void>;
}

/** SEEKABLE_TIMING: marks the first request of each kind the kernel sends, and its answer. */
function markFirstCalls(ops: Record<string, unknown>): void {
  for (const [name, op] of Object.entries(ops)) {
    if (typeof op !== "function") continue;
    let first = true;
    ops[name] = (...args: unknown[]) => {
      if (first) {
        first = false;
        performance.mark(`fuse: first ${name} asked`);
        const cb = args[args.length - 1] as (...r: unknown[]) => void;
        args[args.length - 1] = (...r: unknown[]) => {
          performance.mark(`fuse: first ${name} answered`);
          cb(...r);
        };
      }
      return op(...args);
    };
  }
}

function describe(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(/\s*\n\s*/g, " ");
}

/** Mounts an opened image or layer read-only at DIR; resolves once the kernel serves it. */
export async function mountTarget(
  target: OpenedTarget,
  dirArg: string,
  opts: MountOptions,
): Promise<MountedImage> {
  opts.prefetch?.catch(() => {}); // settled below, once mounted (reported through `profiled`)
  const dir = resolve(dirArg);
  if (await clearStaleMount(dir)) opts.log(`${dir}: cleared a stale mount left by a dead process`);
  const st = await stat(dir);
  if (!st.isDirectory()) throw new Error(`${dir}: not a directory`);

  const prefetch = new PrioritizedPrefetch();
  const profile = new ProfilePrefetch();
  const pool = new ChunkPool(64 << 20, (item) => prefetch.covering(item) ?? profile.covering(item));
  const recorder = opts.record ? new AccessRecorder() : undefined;
  const reported = new Map<string, number>();
  const content = new Content(target.layers, pool);
  const ops = fuseOperations({
    fs: target.fs,
    content,
    firstReads: guessers(target.fs, () => content, opts, new Guessing()),
    inodes: new Inodes(),
    recorder,
    readAhead: opts.readAhead,
    onError: (path, e) => {
      // One line per failing file and cause, not one per kernel read of it.
      const line = `read of /${path} failed: ${describe(e)}`;
      const at = Date.now();
      if ((reported.get(line) ?? 0) > at - 5000) return;
      reported.set(line, at);
      opts.log(line);
    },
  });
  if (process.env.SEEKABLE_TIMING) markFirstCalls(ops as unknown as Record<string, unknown>);
  // ro: the kernel answers EROFS to writes itself. use_ino: hardlinks share our inode
  // numbers. negative_timeout: an image never changes, so a name that is not there stays
  // so (a program's start probes many: python's import path, the dynamic loader's).
  // Without max_pages (libfuse 2 cannot ask for it) reads are 128 KiB at most.
  const fuse = new LayerFuse(
    dir,
    ops,
    { ...layerFuseOptions("seekable"), defaultPermissions: true },
    ["ro", "use_ino", "negative_timeout=3600"],
  );
  performance.mark("mount: FUSE mount started");
  await new Promise<void>((res, rej) => fuse.mount((err) => (err ? rej(err) : res())));
  performance.mark("mount: FUSE mount up");

  const background = new AbortController();
  const prioritized = prefetch.start(target.layers, (e) =>
    opts.log(`prefetch of the prioritized files failed: ${describe(e)}`),
  );
  const profiled = (opts.prefetch ?? Promise.resolve(undefined)).then((paths) =>
    paths && !background.signal.aborted
      ? profile.start(target, paths, background.signal)
      : undefined,
  );
  profiled.catch(() => {}); // the caller reports it
  if (opts.backgroundFetch) {
    void Promise.allSettled([prioritized, profiled])
      .then(() => backgroundFetch(target.layers, pool, { signal: background.signal }))
      .catch((e) => {
        if (!background.signal.aborted) opts.log(`background fetch stopped: ${describe(e)}`);
      });
  }

  let unmounting: Promise<void> | undefined;
  return {
    dir,
    prioritized,
    profiled,
    unmount() {
      unmounting ??= (async () => {
        background.abort();
        await new Promise<void>((res) =>
          fuse.unmount((err) => {
            if (err) opts.log(`${dir}: unmount: ${describe(err)}`);
            res();
          }),
        );
        // If fuse-native could not detach it (busy), detach lazily so nothing is left behind.
        await clearStaleMount(dir).catch(() => detach(dir));
        if (recorder && opts.record) await recorder.write(opts.record);
      })();
      return unmounting;
    },
  };
}
