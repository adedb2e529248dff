import { type ChunkRef, cleanEntryName, type LayerReader, SeekableError } from "@seekable/format";
import { type ImageFS, IndexedLayer, type LayerView, type OpenedLayer } from "@seekable/reader";
import { mergeSpans, type Span } from "@seekable/registry";
import { resolved } from "./attr.js";
import type { ChunkItem, ChunkPool } from "./chunks.js";

/** Paths of the regular files before `.prefetch.landmark` (none when there is no landmark). */
export function prioritizedPaths(reader: LayerReader): string[] {
  return reader.prioritizedPaths(); // from the TOC index: no second parse of the TOC JSON
}

/**
 * The prioritized region of every eStargz layer, fetched in the background as soon as the
 * image is mounted: one reader prefetch per layer (one request when the region fits the
 * budget). A read of a chunk in a region still in flight waits for it instead of fetching
 * it again.
 */
export class PrioritizedPrefetch {
  private readonly pending = new Map<number, { offsets: Set<number>; done: Promise<void> }>();

  start(layers: OpenedLayer[], onError: (e: unknown) => void): Promise<void> {
    const all: Promise<void>[] = [];
    layers.forEach((l, index) => {
      if (!l.reader) return;
      const paths = prioritizedPaths(l.reader);
      if (paths.length === 0) return;
      const offsets = new Set<number>();
      for (const p of paths) {
        const n = l.reader.lookup(p);
        for (const c of (n && l.reader.resolve(n).chunks) ?? []) offsets.add(c.offset);
      }
      const budget = Number.MAX_SAFE_INTEGER; // one read: the region is laid out contiguously
      const done = l.reader
        .prefetch(paths, undefined, budget)
        .catch(onError)
        .finally(() => this.pending.delete(index));
      this.pending.set(index, { offsets, done });
      all.push(done);
    });
    return Promise.all(all).then(() => {});
  }

  /** The pending prefetch a chunk belongs to, if any. */
  covering(item: ChunkItem): Promise<void> | undefined {
    const layer = Number(item.key.slice(0, item.key.indexOf(":")));
    const p = this.pending.get(layer);
    return p?.offsets.has(item.ref.offset) ? p.done : undefined;
  }
}

/**
 * `--background-fetch`: every other chunk of every eStargz layer, in TOC order, in batches
 * of `batchBytes` (compressed), each started only when no on-demand read is in flight and
 * none ended in the last `quietMs`: on-demand reads wait at most for one batch.
 */
export async function backgroundFetch(
  layers: OpenedLayer[],
  pool: ChunkPool,
  opts: { signal: AbortSignal; batchBytes?: number; quietMs?: number },
): Promise<{ files: number }> {
  const batchBytes = opts.batchBytes ?? 4 << 20;
  const quietMs = opts.quietMs ?? 50;
  let files = 0;
  for (const l of layers) {
    const reader = l.reader;
    if (!reader?.cache) continue;
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      while (pool.active > 0 || Date.now() - pool.lastActive < quietMs) {
        if (opts.signal.aborted) return;
        await new Promise((r) => setTimeout(r, quietMs));
      }
      if (opts.signal.aborted) return;
      await reader.prefetch(batch, opts.signal, batchBytes);
      files += batch.length;
      batch = [];
      bytes = 0;
    };
    for (const n of reader.walk()) {
      if (opts.signal.aborted) return { files };
      if (n.type !== "reg" || n.size === 0) continue;
      batch.push(n.path);
      for (const c of n.chunks) bytes += c.nextOffset - c.offset;
      if (bytes >= batchBytes) await flush();
    }
    if (batch.length > 0) await flush();
  }
  return { files };
}

/** What a profile prefetch did. */
export interface ProfilePrefetchResult {
  /** Regular files of the profile found in the image. */
  files: number;
  /** Paths of the profile not in the image (only with `skipMissing`; otherwise a rejection). */
  missing: number;
  /** Chunks fetched and verified, and chunks found in the cache already. */
  chunks: number;
  cached: number;
  /** Compressed bytes asked of the sources (spans, gaps included). */
  bytes: number;
  /** Source reads: one batched (multi-range) request each where the registry allows. */
  reads: number;
  ms: number;
}

/** The profile does not describe this image (paths that are not in it). */
export class ProfileMismatchError extends SeekableError {
  override readonly name = "ProfileMismatchError";
  constructor(message: string) {
    super(message, "input");
  }
}

/** How one prefetch treats the image it is given. */
export interface ProfilePrefetchStartOptions {
  /**
   * Prefetch the paths that are in the image and count the others in `missing`, instead of
   * rejecting (`seekable store`: one profile for several images, or an image whose layers
   * are not all served lazily).
   */
  skipMissing?: boolean;
}

export interface ProfilePrefetchOptions {
  /** Spans per source read (the registry source sends up to 32 per multi-range request). */
  maxRanges?: number;
  /** Widest gap between wanted members fetched to save a request (default 2 MiB). */
  maxGap?: number;
  /** Compressed bytes per read; a larger profile takes several (default 32 MiB). */
  batchBytes?: number;
}

interface Batch {
  chunks: { path: string; ref: ChunkRef }[];
  members: Map<number, ChunkRef>;
  bytes: number;
  done: Promise<void>;
  settle: () => void;
}

/**
 * `mount --prefetch`: the chunks of a profile's files (paths in first-access order, as
 * `--record` writes them), fetched at mount with one batched read per layer and put, once
 * verified against their chunk digests, in the reader's cache. An on-demand read of a
 * chunk still being prefetched waits for it (ChunkPool's `before` hook) instead of
 * fetching it again; if the prefetch fails, the read fetches it itself.
 */
export class ProfilePrefetch {
  private readonly pending = new Map<LayerReader, Map<number, Promise<void>>>();
  private readonly maxRanges: number;
  private readonly maxGap: number;
  private readonly batchBytes: number;

  constructor(opts: ProfilePrefetchOptions = {}) {
    this.maxRanges = Math.max(1, opts.maxRanges ?? 32);
    this.maxGap = opts.maxGap ?? 2 << 20;
    this.batchBytes = opts.batchBytes ?? 32 << 20;
  }

  /**
   * Plans synchronously (so reads from now on wait for what is planned), then fetches.
   * Rejects with ProfileMismatchError, before fetching anything, when a path is not in
   * the image (unless `skipMissing`); with the first fetch or verification error otherwise
   * (after the rest ran). Only the layers in `target.layers` are fetched from: a file whose
   * top-most layer in `target.fs` is another one counts, but is not fetched.
   */
  start(
    target: { fs: ImageFS; layers: OpenedLayer[] },
    paths: string[],
    signal?: AbortSignal,
    opts: ProfilePrefetchStartOptions = {},
  ): Promise<ProfilePrefetchResult> {
    const t0 = Date.now();
    const readers = new Map<LayerView, LayerReader | undefined>(
      target.layers.map((l) => [l.view, l.reader]),
    );
    const missing: string[] = [];
    const wanted = new Map<LayerReader, { path: string; ref: ChunkRef }[]>();
    // Indexed gzip layers: their own batched prefetch (spans from their checkpoints).
    const indexed = new Map<IndexedLayer, { paths: string[]; chunks: number }>();
    let files = 0;
    for (const p of paths) {
      const m = target.fs.lookup(cleanEntryName(p));
      if (!m) {
        missing.push(p);
        continue;
      }
      const n = resolved(m.node);
      if (n.type !== "reg") continue;
      files++;
      if (m.layer instanceof IndexedLayer) {
        const e = indexed.get(m.layer) ?? { paths: [], chunks: 0 };
        e.paths.push(m.node.path);
        e.chunks += n.chunks.length;
        indexed.set(m.layer, e);
        continue;
      }
      const reader = readers.get(m.layer);
      if (!reader?.cache) continue; // a layer streamed whole is local already
      const list = wanted.get(reader) ?? [];
      for (const ref of n.chunks) if (ref.chunkDigest) list.push({ path: n.path, ref });
      wanted.set(reader, list);
    }
    if (missing.length > 0 && !opts.skipMissing) {
      return Promise.reject(
        new ProfileMismatchError(
          `${missing.length} of ${paths.length} paths are not in this image (first: /${cleanEntryName(missing[0])})`,
        ),
      );
    }
    const result: ProfilePrefetchResult = {
      files,
      missing: missing.length,
      chunks: 0,
      cached: 0,
      bytes: 0,
      reads: 0,
      ms: 0,
    };
    const runs = [...wanted].map(([reader, list]) =>
      this.runLayer(reader, this.plan(reader, list), result, signal),
    );
    for (const [ix, e] of indexed)
      runs.push(
        ix.prefetch(e.paths, signal).then(() => {
          result.chunks += e.chunks;
          result.reads++;
        }),
      );
    return Promise.allSettled(runs).then((settled) => {
      result.ms = Date.now() - t0;
      const failed = settled.find((s) => s.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
      return result;
    });
  }

  /** The pending prefetch a chunk belongs to, if any. */
  covering(item: ChunkItem): Promise<void> | undefined {
    return this.pending.get(item.reader)?.get(item.ref.offset);
  }

  /** Chunks in profile order, cut into batches of about `batchBytes`; registered as pending. */
  private plan(reader: LayerReader, list: { path: string; ref: ChunkRef }[]): Batch[] {
    const batches: Batch[] = [];
    const memberBatch = new Map<number, Batch>();
    const seen = new Set<string>();
    const offsets = this.pending.get(reader) ?? new Map<number, Promise<void>>();
    this.pending.set(reader, offsets);
    for (const c of list) {
      const key = `${c.ref.offset}:${c.ref.innerOffset}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let b = memberBatch.get(c.ref.offset);
      if (!b) {
        b = batches[batches.length - 1];
        if (!b || b.bytes >= this.batchBytes) {
          let settle = () => {};
          const done = new Promise<void>((r) => {
            settle = r;
          });
          b = { chunks: [], members: new Map(), bytes: 0, done, settle };
          batches.push(b);
        }
        b.members.set(c.ref.offset, c.ref);
        b.bytes += c.ref.nextOffset - c.ref.offset;
        memberBatch.set(c.ref.offset, b);
        offsets.set(c.ref.offset, b.done);
      }
      b.chunks.push(c);
    }
    return batches;
  }

  private async runLayer(
    reader: LayerReader,
    batches: Batch[],
    result: ProfilePrefetchResult,
    signal?: AbortSignal,
  ): Promise<void> {
    const offsets = this.pending.get(reader);
    let error: unknown;
    for (const b of batches) {
      try {
        if (!signal?.aborted) await this.fetchBatch(reader, b, result, signal);
      } catch (e) {
        error ??= e;
      } finally {
        for (const off of b.members.keys()) if (offsets?.get(off) === b.done) offsets.delete(off);
        b.settle();
      }
    }
    if (offsets?.size === 0) this.pending.delete(reader);
    if (error !== undefined) throw error;
  }

  private async fetchBatch(
    reader: LayerReader,
    b: Batch,
    result: ProfilePrefetchResult,
    signal?: AbortSignal,
  ): Promise<void> {
    const cache = reader.cache;
    if (!cache) return;
    const hits = await Promise.all(b.chunks.map(({ ref }) => cache.get(ref.chunkDigest as string)));
    const need = b.chunks.filter((_, k) => !hits[k]);
    result.cached += b.chunks.length - need.length;
    if (need.length === 0) return;
    const members = [...new Set(need.map((c) => c.ref.offset))]
      .sort((x, y) => x - y)
      .map((off) => b.members.get(off) as ChunkRef);
    const spans = mergeSpans(
      members.map((m) => ({ start: m.offset, end: m.nextOffset })),
      this.maxRanges,
      this.maxGap,
    );
    const spanOf = new Map<number, Span>();
    for (const s of spans) for (const i of s.members) spanOf.set(members[i].offset, s);
    result.reads++;
    for (const s of spans) result.bytes += s.end - s.start;
    const bufs = await reader.source.read(
      spans.map((s) => ({ offset: s.start, length: s.end - s.start })),
      signal,
    );
    const bufOf = new Map(spans.map((s, k) => [s, bufs[k]]));
    let error: unknown;
    for (const { path, ref } of need) {
      const s = spanOf.get(ref.offset) as Span;
      const buf = bufOf.get(s) as Uint8Array;
      try {
        // The same decoding and digest check as every on-demand read.
        const data = await reader.verifiedChunk(
          buf.subarray(ref.offset - s.start, ref.nextOffset - s.start),
          ref,
          path,
        );
        await cache.put(ref.chunkDigest as string, data);
        result.chunks++;
      } catch (e) {
        error ??= e; // this chunk is left to the on-demand read, which fetches it again
      }
    }
    if (error !== undefined) throw error;
  }
}
