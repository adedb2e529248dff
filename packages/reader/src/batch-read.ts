import { createHash, type Hash } from "node:crypto";
import {
  type ChunkCache,
  type ChunkRef,
  FormatError,
  LayerReader,
  type Node,
  NotFoundError,
  VerificationError,
} from "@seekable/format";
import { DEFAULT_GAP } from "@seekable/registry";
import type { LayerView } from "./layer-view.js";

/** One file to read: the layer that provides it and its path there. */
export interface FileRef {
  layer: LayerView;
  path: string;
}

export interface BatchReadOptions {
  /**
   * Bytes held per window (inflated chunk bytes, and compressed member bytes, each at most
   * this). Two windows are in memory at once (one written while the next is fetched), plus
   * at most this much carried over for chunks that a later window uses again.
   */
  windowBytes?: number;
  signal?: AbortSignal;
}

/** A file of an eStargz layer, read chunk by chunk through the plan. */
interface ChunkedJob {
  reader: LayerReader;
  node: Node;
  hash: Hash;
  left: number;
}

type Piece =
  | { job: ChunkedJob; ref: ChunkRef; digest: string }
  /** Read through the layer's own stream (a whole layer, or legacy chunks without digests). */
  | { file: FileRef };

interface Window {
  start: number;
  end: number;
  /** The chunks this window fetches (one per digest), as source reads per layer. */
  reads: Map<LayerReader, Fetch[][]>;
  /** Digests still held after this window is written: a later window uses them again. */
  keep: Set<string>;
}

const DEFAULT_WINDOW = 16 << 20;

/** The cache's `get` with the chunk size, when the cache takes one (a disk cache does). */
type SizedGet = (digest: string, size?: number) => ReturnType<ChunkCache["get"]>;

/**
 * The contents of `files`, concatenated in order, read through bounded memory: the chunks
 * are planned in windows of bounded bytes, each window fetched with one source read per
 * layer (a few when the list's order interleaves the blob's; the source can use
 * multi-range requests), written in order as its reads arrive, and the next window
 * fetched while this one is written. Chunks are held by the plan, not by a cache, so
 * nothing fetched is dropped before it is written: no member is fetched twice, however
 * large the list. Every chunk is verified against its digest before it is yielded, each
 * whole file against its digest at its end.
 */
export async function* readFiles(
  files: FileRef[],
  opts: BatchReadOptions = {},
): AsyncGenerator<Uint8Array> {
  const budget = Math.max(1, opts.windowBytes ?? DEFAULT_WINDOW);
  const pieces = planPieces(files);
  const windows = planWindows(pieces, budget);
  // The window fetched ahead must not outlive the consumer: it is aborted on exit.
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  if (opts.signal?.aborted) throw opts.signal.reason;
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const start = (w: Window | undefined) =>
    w && !ac.signal.aborted ? fetchWindow(w, ac.signal) : undefined;
  let held = new Map<string, Uint8Array>();
  let cur = start(windows[0]);
  try {
    for (let w = 0; w < windows.length; w++) {
      const win = windows[w] as Window;
      const fetching = cur as Fetching;
      // The next window is fetched while this one is written, once this one's reads are
      // done: they go first, and the first bytes go out as soon as their read arrives.
      const next = fetching.done.then(
        () => start(windows[w + 1]),
        () => undefined,
      );
      for (let i = win.start; i < win.end; i++) {
        const p = pieces[i] as Piece;
        if ("file" in p) {
          yield* p.file.layer.stream(p.file.path, ac.signal);
          continue;
        }
        let data = held.get(p.digest);
        if (!data) {
          data = await (fetching.chunks.get(p.digest) as Promise<Uint8Array>);
          held.set(p.digest, data);
        }
        p.job.hash.update(data);
        yield data;
        if (--p.job.left === 0) checkFile(p.job.node, p.job.hash);
      }
      const kept = new Map<string, Uint8Array>();
      for (const k of win.keep) kept.set(k, held.get(k) as Uint8Array);
      held = kept;
      cur = await next;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    ac.abort();
  }
}

/** Files as pieces in output order; a missing or non-regular file fails before any output. */
function planPieces(files: FileRef[]): Piece[] {
  const pieces: Piece[] = [];
  for (const file of files) {
    const { layer, path } = file;
    if (!(layer instanceof LayerReader)) {
      pieces.push({ file });
      continue;
    }
    const n = layer.lookup(path);
    if (!n) throw new NotFoundError(`${JSON.stringify(path)}: no such file in layer`);
    const node = layer.resolve(n);
    if (node.type !== "reg")
      throw new FormatError(`${JSON.stringify(path)}: not a regular file (${node.type})`);
    // Legacy stargz files are verified whole before any byte: the layer's stream does that.
    if (node.chunks.some((c) => !c.chunkDigest)) {
      pieces.push({ file });
      continue;
    }
    const job: ChunkedJob = {
      reader: layer,
      node,
      hash: createHash("sha256"),
      left: node.chunks.length,
    };
    if (job.left === 0) checkFile(node, job.hash);
    for (const ref of node.chunks) pieces.push({ job, ref, digest: ref.chunkDigest as string });
  }
  return pieces;
}

/** What a chunk costs a window: its inflated bytes or its member, whichever is larger. */
function cost(ref: ChunkRef): number {
  return Math.max(ref.chunkSize, ref.nextOffset - ref.offset);
}

type Fetch = { job: ChunkedJob; ref: ChunkRef; digest: string };

/**
 * Cuts the pieces into windows of at most `budget` new bytes (at least one chunk each).
 * A chunk used again later is carried to that use while the carry stays within the budget;
 * past it, the later window fetches it again rather than hold unbounded memory.
 */
function planWindows(pieces: Piece[], budget: number): Window[] {
  const lastUse = new Map<string, number>();
  // Per layer, every planned member in blob order: what lies in a gap between two ranges.
  const byOffset = new Map<LayerReader, Fetch[]>();
  pieces.forEach((p, i) => {
    if (!("digest" in p)) return;
    lastUse.set(p.digest, i);
    const list = byOffset.get(p.job.reader) ?? [];
    list.push(p);
    byOffset.set(p.job.reader, list);
  });
  for (const list of byOffset.values()) list.sort((x, y) => x.ref.offset - y.ref.offset);
  const windows: Window[] = [];
  let carried = new Map<string, number>();
  for (let i = 0; i < pieces.length; ) {
    const fetch = new Map<string, Fetch>();
    let bytes = 0;
    let j = i;
    for (; j < pieces.length; j++) {
      const p = pieces[j] as Piece;
      if (!("digest" in p) || carried.has(p.digest) || fetch.has(p.digest)) continue;
      if (fetch.size > 0 && bytes + cost(p.ref) > budget) break;
      fetch.set(p.digest, p);
      bytes += cost(p.ref);
    }
    const keep = new Map<string, number>();
    let keptBytes = 0;
    const candidates: [string, number][] = [
      ...carried,
      ...[...fetch.values()].map((p): [string, number] => [p.digest, cost(p.ref)]),
    ];
    for (const [d, c] of candidates) {
      if ((lastUse.get(d) as number) < j || keptBytes + c > budget) continue;
      keep.set(d, c);
      keptBytes += c;
    }
    const reads = new Map<LayerReader, Fetch[][]>();
    for (const [reader, all] of byOffset) {
      const mine = [...fetch.values()].filter((p) => p.job.reader === reader);
      if (mine.length > 0) reads.set(reader, splitReads(mine, all));
    }
    windows.push({ start: i, end: j, reads, keep: new Set(keep.keys()) });
    carried = keep;
    i = j;
  }
  return windows;
}

/**
 * One layer's members of a window as separate reads, so that no read's merged span covers
 * another member of the list (fetched by another read, an earlier or a later window: it
 * would arrive twice). Each member joins the first read whose last member is adjacent,
 * farther than the source's gap, or separated from it by no member of the list. Usually
 * one read; a few when the list's order interleaves the blob's.
 */
function splitReads(mine: Fetch[], all: Fetch[]): Fetch[][] {
  mine.sort((x, y) => x.ref.offset - y.ref.offset);
  const reads: Fetch[][] = [];
  for (const p of mine) {
    const fits = (read: Fetch[]): boolean => {
      const from = (read[read.length - 1] as Fetch).ref.nextOffset;
      const to = p.ref.offset;
      // A registry source merges ranges closer than DEFAULT_GAP into one span.
      if (to <= from || to - from > DEFAULT_GAP) return true;
      const m = lowerBound(all, from);
      return m >= all.length || (all[m] as Fetch).ref.offset >= to;
    };
    const read = reads.find(fits);
    if (read) read.push(p);
    else reads.push([p]);
  }
  return reads;
}

/** First index of `list` (sorted by member offset) at or after `offset`. */
function lowerBound(list: Fetch[], offset: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as Fetch).ref.offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A window being fetched: each chunk as its read arrives, and the whole window. */
interface Fetching {
  chunks: Map<string, Promise<Uint8Array>>;
  done: Promise<void>;
}

/**
 * One window's chunks by digest: each from its layer's cache when there, the rest with the
 * planned source reads (a member shared by several chunks once), verified and cached. No
 * rejection is left unhandled: each is seen where the chunk or the window is awaited.
 */
function fetchWindow(w: Window, signal: AbortSignal): Fetching {
  const chunks = new Map<string, Promise<Uint8Array>>();
  const jobs: Promise<void>[] = [];
  for (const [reader, reads] of w.reads) {
    for (const read of reads) {
      const settle = new Map<string, [(d: Uint8Array) => void, (e: unknown) => void]>();
      for (const p of read) {
        const chunk = new Promise<Uint8Array>((resolve, reject) =>
          settle.set(p.digest, [resolve, reject]),
        );
        chunk.catch(() => {});
        chunks.set(p.digest, chunk);
      }
      const job = fetchRead(reader, read, signal, (d, data) => settle.get(d)?.[0](data));
      job.catch((e) => {
        for (const [, reject] of settle.values()) reject(e); // a settled promise ignores this
      });
      jobs.push(job);
    }
  }
  const done = Promise.all(jobs).then(() => {});
  done.catch(() => {});
  return { chunks, done };
}

/** One planned read: cache hits, then one source read for the rest, each chunk verified. */
async function fetchRead(
  reader: LayerReader,
  read: Fetch[],
  signal: AbortSignal,
  arrived: (digest: string, data: Uint8Array) => void,
): Promise<void> {
  const cache = reader.cache;
  const hits = await Promise.all(
    read.map((p) =>
      cache ? (cache.get as SizedGet).call(cache, p.digest, p.ref.chunkSize) : undefined,
    ),
  );
  const miss: Fetch[] = [];
  read.forEach((p, k) => {
    const hit = hits[k];
    if (hit && hit.length === p.ref.chunkSize) arrived(p.digest, hit);
    else miss.push(p);
  });
  if (miss.length === 0) return;
  const members = new Map<number, ChunkRef>();
  for (const { ref } of miss) members.set(ref.offset, ref);
  const refs = [...members.values()];
  const bufs = await reader.source.read(
    refs.map((r) => ({ offset: r.offset, length: r.nextOffset - r.offset })),
    signal,
  );
  const byOffset = new Map(refs.map((r, k) => [r.offset, bufs[k] as Uint8Array]));
  for (const { job, ref, digest } of miss) {
    // Bounded by the TOC entry, off the main thread when large (as every read).
    const data = await reader.verifiedChunk(
      byOffset.get(ref.offset) as Uint8Array,
      ref,
      job.node.path,
    );
    arrived(digest, data);
    await cache?.put(digest, data);
  }
}

function checkFile(node: Node, hash: Hash): void {
  if (!node.digest) return;
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== node.digest)
    throw new VerificationError(
      `${node.path}: content does not match its digest (got ${got}, TOC says ${node.digest})`,
    );
}
