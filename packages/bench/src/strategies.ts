// The ways to start a workload from a registry, each timed from nothing (no process, no
// connection, no cache) to the workload's end, through the shaping proxy:
//   full-pull           download every layer, decompress, extract, then run (what exists now);
//   cold-mount          start `seekable mount` with an empty cache, run from the mount;
//   cold-mount-profile  the same with `--prefetch PROFILE` (the files a recorded start opened);
//   reference-store     start stargz-store (the reference lazy store, no background fetch,
//                       no prefetch), overlay its layers, run from the overlay;
//   batched-list        seekable's reader fetching a known file list with batched
//                       multi-range reads: not a real start (no program opens files that way).
// A workload with a command runs it (`chroot ROOT /bin/sh -c CMD`, /dev and /proc bound);
// one without reads its files one after another. Either way every workload file is then
// hashed (untimed) and checked against the full pull's extracted files.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pipeline } from "node:stream/promises";
import { SeekableError } from "@seekable/format";
import { MemoryChunkCache, openImage, ReadStats } from "@seekable/reader";
import {
  type Credentials,
  formatReference,
  getBlob,
  getImageManifest,
  limiter,
  parsePlatform,
  type Reference,
  RegistryClient,
} from "@seekable/registry";
import { applyLayer } from "./extract.js";
import {
  type MountStats,
  parseMountStats,
  type SeekableCommand,
  startReferenceStore,
  startSeekableMount,
  storeRefName,
} from "./processes.js";
import { hashInRoot, type ProcessResult, readAllInRoot, runInRoot } from "./rootfs.js";
import type { ShapingProxy } from "./shaping-proxy.js";

export type StrategyName =
  | "full-pull"
  | "cold-mount"
  | "cold-mount-profile"
  | "reference-store"
  | "batched-list";

/** Every strategy, in report order. */
export const STRATEGIES: StrategyName[] = [
  "full-pull",
  "cold-mount",
  "cold-mount-profile",
  "reference-store",
  "batched-list",
];

/** What runs when no strategy is named (reference-store joins when its binary is given). */
export const DEFAULT_STRATEGIES: StrategyName[] = ["full-pull", "cold-mount", "cold-mount-profile"];

/** What each strategy is, in words (tables, chart legend). */
export const STRATEGY_LABELS: Record<StrategyName, string> = {
  "full-pull": "full pull (download, extract, run)",
  "cold-mount": "cold mount",
  "cold-mount-profile": "cold mount + profile",
  "reference-store": "reference store (stargz-store)",
  "batched-list": "batched known file list — not a real start",
};

export function isStrategyName(s: string): s is StrategyName {
  return (STRATEGIES as string[]).includes(s);
}

export interface RunFigures {
  /** Wall time from the start (process start for the mounts) to the workload's end. */
  seconds: number;
  /** Response body bytes that crossed the shaped link until the workload's end. */
  bytesFetched: number;
  /** HTTP requests that crossed the shaped link until the workload's end. */
  requests: number;
  /** TCP connections opened to the shaped link until the workload's end. */
  connections: number;
  /** Mount strategies: seconds from the start until the file system answered. */
  readySeconds?: number;
}

export interface RunOutput extends RunFigures {
  /** sha256 of each workload file, in workload order. */
  digests: string[];
  /** cold-mount*: the mount's own --stats at exit (after the untimed hashing). */
  mountStats?: MountStats;
  /** cold-mount*: requests through the proxy at the mount's exit (compare with mountStats). */
  requestsAtExit?: number;
  /** full-pull: the workload run again on the local copy, everything at hand (untimed). */
  warmSeconds?: number;
}

/** A workload as the strategies run it. */
export interface RunnableWorkload {
  name: string;
  /** Regular files in access order (what is verified, and read when there is no command). */
  paths: string[];
  /** The command to start (`/bin/sh -c`), when the workload is a program's start. */
  command?: string;
  /** A recorded profile for `mount --prefetch` (the file `mount --record` wrote). */
  profile: string;
}

export interface StrategyContext {
  proxy: ShapingProxy;
  /** The image to read, through the proxy (the original for full-pull, else eStargz). */
  ref: Reference;
  workload: RunnableWorkload;
  /** Where runs keep their files (a fresh directory per run, removed after). */
  tmpDir: string;
  credentials?: Credentials;
  /** `--creds USER:PASS` for the mount process, as given. */
  creds?: string;
  /** os/arch[/variant] to pick from an index (default: the host's). */
  platform?: string;
  /** How to start the seekable CLI (the mount strategies). */
  seekable?: SeekableCommand;
  /** The stargz-store binary (reference-store). */
  referenceStore?: string;
  /** Layer digests of `ref`, bottom first (reference-store). */
  layers?: string[];
}

/** A failure of one strategy: names it and the image. */
export class StrategyError extends SeekableError {
  override readonly name = "StrategyError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, "system", options);
  }
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** What a strategy's body reports to the common timing code. */
interface Timed {
  /** performance.now() at the workload's end (counters are read there). */
  end: number;
  readyAt?: number;
  /** Untimed: hashes the workload files, stops processes; returns digests and extras. */
  finish(): Promise<{
    digests: string[];
    mountStats?: MountStats;
    requestsAtExit?: number;
    warmSeconds?: number;
  }>;
  /** Cleanup on failure (processes, mounts). */
  abort(): Promise<void>;
}

export async function runStrategy(name: StrategyName, ctx: StrategyContext): Promise<RunOutput> {
  // Dirty pages of an earlier run (its extracted tree, now deleted) must not be written
  // back during this one.
  spawnSync("sync");
  ctx.proxy.dropConnections();
  ctx.proxy.reset();
  const dir = await mkdtemp(join(ctx.tmpDir, `${name}-`));
  const t0 = performance.now();
  let timed: Timed | undefined;
  try {
    timed =
      name === "full-pull"
        ? await fullPull(ctx, dir)
        : name === "cold-mount" || name === "cold-mount-profile"
          ? await coldMount(ctx, dir, name === "cold-mount-profile")
          : name === "reference-store"
            ? await referenceStore(ctx, dir)
            : await batchedList(ctx);
    const c = { ...ctx.proxy.counters };
    const extra = await timed.finish();
    return {
      seconds: (timed.end - t0) / 1000,
      readySeconds: timed.readyAt === undefined ? undefined : (timed.readyAt - t0) / 1000,
      bytesFetched: c.bytes,
      requests: c.requests,
      connections: c.connections,
      ...extra,
    };
  } catch (e) {
    await timed?.abort().catch(() => undefined);
    const msg = (e as Error)?.message ?? String(e);
    throw new StrategyError(`${name} of ${formatReference(ctx.ref)}: ${msg}`);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The workload in `root`: its command (must exit 0), or its files read in order. */
async function runWorkload(root: string, w: RunnableWorkload): Promise<void> {
  if (w.command === undefined) {
    await readAllInRoot(root, w.paths);
    return;
  }
  const r: ProcessResult = await runInRoot(root, w.command);
  if (r.code !== 0)
    throw new SeekableError(
      `${JSON.stringify(w.command)} exited ${r.code ?? r.signal}: ${r.stderr.trim().split("\n").slice(-1)[0] ?? ""}`,
      "system",
    );
}

/** Every layer blob downloaded (3 at once, digest checked), extracted in order, then run. */
async function fullPull(ctx: StrategyContext, dir: string): Promise<Timed> {
  const client = new RegistryClient({
    credentials: ctx.credentials,
    // A failure must show, not be retried into a slower figure.
    retry: { attempts: 1 },
  });
  try {
    const { manifest } = await getImageManifest(client, ctx.ref, {
      platform: ctx.platform ? parsePlatform(ctx.platform) : undefined,
    });
    const layers = manifest.json.layers ?? [];
    const repo = { registry: ctx.ref.registry, repository: ctx.ref.repository };
    const root = join(dir, "rootfs");
    await mkdir(root);
    const limit = limiter(3);
    const downloads = layers.map((d, i) =>
      limit(async () => {
        const file = join(dir, `layer${i}`);
        await pipeline(
          getBlob(client, repo, d.digest, { size: d.size }),
          createWriteStream(file, { highWaterMark: 1 << 20 }),
        );
        return file;
      }),
    );
    for (const d of downloads) d.catch(() => {});
    // Extraction is in layer order, each layer as soon as it and those below are in.
    for (const d of downloads) await applyLayer(await d, root);
    await runWorkload(root, ctx.workload);
    const end = performance.now();
    return {
      end,
      finish: async () => {
        // The physical limit's first term: the same start with every byte local and warm.
        const w0 = performance.now();
        await runWorkload(root, ctx.workload);
        const warmSeconds = (performance.now() - w0) / 1000;
        return { digests: await hashInRoot(root, ctx.workload.paths), warmSeconds };
      },
      abort: async () => {},
    };
  } finally {
    await client.close().catch(() => {});
  }
}

/** `seekable mount` (fresh cache dir, optionally --prefetch PROFILE), then the workload. */
async function coldMount(ctx: StrategyContext, dir: string, profile: boolean): Promise<Timed> {
  if (!ctx.seekable) throw new SeekableError("no seekable command to mount with", "usage");
  const mnt = join(dir, "mnt");
  const extra = ["--cache-dir", join(dir, "cache")];
  if (profile) extra.push("--prefetch", ctx.workload.profile);
  if (ctx.creds) extra.push("--creds", ctx.creds);
  if (ctx.platform) extra.push("--platform", ctx.platform);
  const m = await startSeekableMount(
    ctx.seekable,
    `docker://${formatReference(ctx.ref)}`,
    mnt,
    extra,
  );
  let stopped = false;
  const stop = async () => {
    if (stopped) return "";
    stopped = true;
    return m.stop();
  };
  try {
    await runWorkload(mnt, ctx.workload);
  } catch (e) {
    // The mount's own account of the failure (a failed verification, a refused range).
    await stop().catch(() => undefined);
    const said = m.lastError();
    throw new SeekableError(`${(e as Error).message}${said ? ` (${said})` : ""}`, "system");
  }
  const end = performance.now();
  return {
    end,
    readyAt: m.readyAt,
    finish: async () => {
      let digests: string[];
      try {
        digests = await hashInRoot(mnt, ctx.workload.paths);
      } catch (e) {
        await stop().catch(() => undefined);
        throw e;
      }
      // The mount's exit (its --stats) must be clean: a failure there is a failed run.
      const stderr = await stop();
      return {
        digests,
        mountStats: parseMountStats(stderr),
        requestsAtExit: ctx.proxy.counters.requests,
      };
    },
    abort: async () => {
      await stop().catch(() => undefined);
    },
  };
}

/** stargz-store started cold, its layers stacked by overlayfs, then the workload. */
async function referenceStore(ctx: StrategyContext, dir: string): Promise<Timed> {
  if (!ctx.referenceStore) throw new SeekableError("no stargz-store binary given", "usage");
  const layers = ctx.layers ?? [];
  const r = ctx.ref;
  const name = `${r.registry}/${r.repository}`;
  const candidates = [
    ...(r.tag ? [`${name}:${r.tag}`] : []),
    ...(r.digest ? [`${name}@${r.digest}`] : []),
    ...(r.tag && r.digest ? [`${name}:${r.tag}@${r.digest}`] : []),
  ];
  const refName = storeRefName(candidates);
  if (!refName)
    throw new SeekableError(
      `every base64 form of ${candidates.join(", ")} holds a '/' (not a file name)`,
      "input",
    );
  const store = await startReferenceStore(ctx.referenceStore, dir, refName, layers);
  try {
    await runWorkload(store.root, ctx.workload);
  } catch (e) {
    await store.stop().catch(() => undefined);
    throw e;
  }
  const end = performance.now();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await store.stop();
  };
  return {
    end,
    readyAt: store.readyAt,
    finish: async () => {
      try {
        return { digests: await hashInRoot(store.root, ctx.workload.paths) };
      } finally {
        await stop();
      }
    },
    abort: stop,
  };
}

/**
 * Not a real start: seekable's reader in this process with a cold in-memory cache opens
 * the image (manifest, each layer's footer and TOC), fetches every workload file's chunks
 * in batched multi-range reads (as `seekable cat A B C`), then reads them from the cache.
 * No program opens files that way; kept to show the floor of a known file list.
 */
async function batchedList(ctx: StrategyContext): Promise<Timed> {
  const client = new RegistryClient({ credentials: ctx.credentials, retry: { attempts: 1 } });
  const target = await openImage(
    { reference: ctx.ref, platform: ctx.platform },
    {
      client: () => client,
      stats: new ReadStats(),
      cache: new MemoryChunkCache(Number.MAX_SAFE_INTEGER),
    },
  );
  try {
    const paths = ctx.workload.paths;
    if (paths.length > 1) await target.fs.prefetch(paths);
    const digests: string[] = [];
    for (const p of paths) digests.push(sha256(await target.fs.read(p)));
    const end = performance.now();
    return { end, finish: async () => ({ digests }), abort: async () => {} };
  } finally {
    await target.close();
    await client.close().catch(() => {});
  }
}
