// The three ways to get a workload's files from a registry, each timed from nothing (no
// connection, no cache) to the last byte of the last file read and checked.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pipeline } from "node:stream/promises";
import { cleanEntryName, type LayerReader, PREFETCH_LANDMARK } from "@seekable/format";
import { MemoryChunkCache, openTarget, ReadStats } from "@seekable/reader";
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
import { applyLayer, readInRoot } from "./extract.js";
import type { ShapingProxy } from "./shaping-proxy.js";

export type StrategyName = "full-pull" | "lazy" | "lazy-optimized";
export const STRATEGIES: StrategyName[] = ["full-pull", "lazy", "lazy-optimized"];

export interface RunFigures {
  /** Wall time from the first request to the last workload byte checked. */
  seconds: number;
  /** Response body bytes that crossed the shaped link. */
  bytesFetched: number;
  /** HTTP requests that crossed the shaped link. */
  requests: number;
  /** TCP connections opened to the shaped link. */
  connections: number;
}

export interface RunOutput extends RunFigures {
  /** sha256 of each workload file, in workload order. */
  digests: string[];
}

export interface StrategyContext {
  proxy: ShapingProxy;
  /** The image to read (through the proxy). */
  ref: Reference;
  paths: string[];
  /** Where full pulls download and extract (a fresh directory per run, removed after). */
  tmpDir: string;
  credentials?: Credentials;
  /** os/arch[/variant] to pick from an index (default: the host's). */
  platform?: string;
}

/** A failure of one strategy: names it and the image. */
export class StrategyError extends Error {
  override readonly name = "StrategyError";
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export async function runStrategy(name: StrategyName, ctx: StrategyContext): Promise<RunOutput> {
  // Dirty pages of an earlier run (its extracted tree, now deleted) must not be written
  // back during this one.
  spawnSync("sync");
  ctx.proxy.dropConnections();
  ctx.proxy.reset();
  const client = new RegistryClient({
    credentials: ctx.credentials,
    // A failure must show, not be retried into a slower figure.
    retry: { attempts: 1 },
  });
  const t0 = performance.now();
  let digests: string[];
  try {
    digests = name === "full-pull" ? await fullPull(client, ctx) : await lazy(client, ctx, name);
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e);
    throw new StrategyError(`${name} of ${formatReference(ctx.ref)}: ${msg}`);
  } finally {
    await client.close().catch(() => {});
  }
  const seconds = (performance.now() - t0) / 1000;
  const c = ctx.proxy.counters;
  return {
    seconds,
    bytesFetched: c.bytes,
    requests: c.requests,
    connections: c.connections,
    digests,
  };
}

/** Every layer blob downloaded (3 at once, digest checked), extracted in order, files read. */
async function fullPull(client: RegistryClient, ctx: StrategyContext): Promise<string[]> {
  const dir = await mkdtemp(join(ctx.tmpDir, "pull-"));
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
    const out: string[] = [];
    for (const p of ctx.paths) {
      let data: Buffer;
      try {
        data = await readInRoot(root, p);
      } catch (e) {
        throw new Error(
          `${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} in the extracted image`,
        );
      }
      out.push(sha256(data));
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Paths of the regular files before `.prefetch.landmark` (none without a landmark). */
export function prioritizedPaths(reader: LayerReader): string[] {
  const entries = reader.toc.entries;
  const mark = entries.findIndex((e) => cleanEntryName(e.name) === PREFETCH_LANDMARK);
  if (mark < 0) return [];
  const out: string[] = [];
  for (const e of entries.slice(0, mark)) if (e.type === "reg") out.push(cleanEntryName(e.name));
  return out;
}

/**
 * seekable's reader with a cold in-memory cache: open the image (manifest, each layer's
 * footer and TOC), then — optimized only — each layer's prioritized region in one request,
 * then the workload's chunks in batched multi-range reads (as `seekable cat A B C`), then
 * every file read from the cache and hashed.
 */
async function lazy(
  client: RegistryClient,
  ctx: StrategyContext,
  name: StrategyName,
): Promise<string[]> {
  const stats = new ReadStats();
  const cache = new MemoryChunkCache(Number.MAX_SAFE_INTEGER);
  const target = await openTarget(`docker://${formatReference(ctx.ref)}`, {
    client: () => client,
    stats,
    cache,
    platform: ctx.platform,
  });
  try {
    if (name === "lazy-optimized") {
      await Promise.all(
        target.layers.map(async (l) => {
          if (!l.reader) return;
          const paths = prioritizedPaths(l.reader);
          if (paths.length > 0) await l.reader.prefetch(paths, undefined, Number.MAX_SAFE_INTEGER);
        }),
      );
    }
    if (ctx.paths.length > 1) await target.fs.prefetch(ctx.paths);
    const out: string[] = [];
    for (const p of ctx.paths) out.push(sha256(await target.fs.read(p)));
    return out;
  } finally {
    await target.close();
  }
}
