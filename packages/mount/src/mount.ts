import type { OpenedTarget } from "@seekable/reader";
import { Inodes } from "./attr.js";
import { ChunkPool } from "./chunks.js";
import { Content } from "./content.js";
import { fuseOperations } from "./fuse-ops.js";
import { type GuessOptions, guessers } from "./guess/guessers.js";
import { Guessing } from "./guess/guessing.js";
import { describe, hostFuse, LineLog } from "./host.js";
import {
  backgroundFetch,
  PrioritizedPrefetch,
  ProfilePrefetch,
  type ProfilePrefetchResult,
} from "./prefetch.js";
import { AccessRecorder } from "./record.js";

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

/** Mounts an opened image or layer read-only at DIR; resolves once the kernel serves it. */
export async function mountTarget(
  target: OpenedTarget,
  dirArg: string,
  opts: MountOptions,
): Promise<MountedImage> {
  opts.prefetch?.catch(() => {}); // settled below, once mounted (reported through `profiled`)
  const prefetch = new PrioritizedPrefetch();
  const profile = new ProfilePrefetch();
  const pool = new ChunkPool(64 << 20, (item) => prefetch.covering(item) ?? profile.covering(item));
  const recorder = opts.record ? new AccessRecorder() : undefined;
  const errors = new LineLog(opts.log);
  const content = new Content(target.layers, pool);
  const ops = fuseOperations({
    fs: target.fs,
    content,
    firstReads: guessers(target.fs, () => content, opts, new Guessing()),
    inodes: new Inodes(),
    recorder,
    readAhead: opts.readAhead,
    // One line per failing file and cause, not one per kernel read of it.
    onError: (path, e) => errors.report(`read of /${path} failed: ${describe(e)}`),
  });
  if (process.env.SEEKABLE_TIMING) markFirstCalls(ops as unknown as Record<string, unknown>);
  const background = new AbortController();
  // ro: the kernel answers EROFS to writes itself. use_ino: hardlinks share our inode
  // numbers. negative_timeout: an image never changes, so a name that is not there stays
  // so (a program's start probes many: python's import path, the dynamic loader's).
  // Without max_pages (libfuse 2 cannot ask for it) reads are 128 KiB at most.
  performance.mark("mount: FUSE mount started");
  const host = await hostFuse(dirArg, ops, {
    fsname: "seekable",
    extra: ["ro", "use_ino", "negative_timeout=3600"],
    fuse: { defaultPermissions: true },
    log: opts.log,
    beforeUnmount: () => background.abort(),
    afterUnmount: async () => {
      if (recorder && opts.record) await recorder.write(opts.record);
    },
  });
  performance.mark("mount: FUSE mount up");

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

  return {
    dir: host.dir,
    prioritized,
    profiled,
    unmount: () => host.unmount(),
  };
}
