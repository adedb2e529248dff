/**
 * A plain gzip layer read lazily through its index (issue 17): paths resolve through the
 * index's TOC; a chunk's bytes come from inflating, from the checkpoint before it, the
 * compressed span that holds it, and are checked against the chunk's sha256 before use. The
 * other chunks of a fetched span are inflated, verified and cached too: the next read in the
 * same span is a cache hit, not another fetch of the span.
 */
import {
  type ChunkCache,
  type ChunkRef,
  cleanEntryName,
  FormatError,
  type GzipIndex,
  inflateSpan,
  type Node,
  type RangeSource,
  regularNode,
  resumeStart,
  type Span,
  sha256Digest,
  spanFor,
  TocIndex,
  VerificationError,
  verifyChunk,
} from "@seekable/format";
import { ByteLru } from "./chunk-cache.js";
import type { LayerView } from "./layer-view.js";

interface Chunk {
  path: string;
  ref: ChunkRef;
}

/** Compressed bytes per source.read call when many chunks are wanted (bounded memory). */
const BATCH_BYTES = 16 << 20;

/** Verified chunks kept in memory per layer (reads and guesses served without the disk). */
const RECENT_BYTES = 32 << 20;

/** Compressed span prefixes kept per layer, so a later read in a span fetches only its tail. */
const PREFIX_BYTES = 64 << 20;

/** Compressed bytes fetched from a checkpoint's resume point, and what they inflate to. */
interface Prefix {
  bytes: Uint8Array;
  /** The uncompressed offset these bytes reach (the span's `out`). */
  out: number;
}

/** An inflation in progress: its checkpoint's text from `from` up to `out`. */
interface Inflight {
  from: number;
  out: number;
  plain: Promise<Uint8Array>;
}

export class IndexedLayer implements LayerView {
  private readonly toc: TocIndex;
  /** Every chunk with data, by uncompressed offset (made on first use). */
  private byOffset: Chunk[] | undefined;
  /** Verified chunks by digest, most recent last. */
  private readonly recent = new ByteLru<string, Uint8Array>(RECENT_BYTES);
  /**
   * Spans being fetched and inflated, by checkpoint: a read that needs bytes one of them
   * will hold waits for it instead of fetching the same span again (concurrent FUSE reads
   * and guesses of files in one span are the common case).
   */
  private readonly inflight = new Map<number, Inflight>();
  /**
   * Compressed bytes fetched, by checkpoint: a file costs the bytes from its checkpoint, so
   * the next file of the span fetches only what lies past them (and inflates from the
   * checkpoint again, CPU instead of a second download of the prefix).
   */
  private readonly prefixes = new ByteLru<number, Prefix & { byteLength: number }>(PREFIX_BYTES);

  constructor(
    readonly index: GzipIndex,
    private readonly source: RangeSource,
    private readonly cache?: ChunkCache,
  ) {
    if (source.size !== index.layer.size)
      throw new FormatError(`layer is ${source.size} bytes, its index says ${index.layer.size}`);
    const bytes = Buffer.from(index.toc.buffer, index.toc.byteOffset, index.toc.byteLength);
    // Chunk offsets are positions in the uncompressed tar: they must lie before its end.
    this.toc = TocIndex.build(bytes, index.uncompressedSize + 1);
  }

  walk(): Iterable<Node> {
    return this.toc.nodes.values();
  }

  lookup(path: string): Node | undefined {
    return this.toc.nodes.get(cleanEntryName(path));
  }

  private regular(path: string): Node {
    return regularNode(path, this.lookup(path));
  }

  async read(path: string, offset = 0, length?: number, signal?: AbortSignal): Promise<Uint8Array> {
    const node = this.regular(path);
    const end = Math.min(node.size, length === undefined ? node.size : offset + length);
    if (offset >= end) return new Uint8Array(0);
    const refs = node.chunks.filter(
      (c) => c.chunkOffset < end && c.chunkOffset + c.chunkSize > offset,
    );
    const datas = await this.chunks(
      refs.map((ref) => ({ path: node.path, ref })),
      signal,
    );
    const out = Buffer.allocUnsafe(end - offset);
    refs.forEach((c, k) => {
      const from = Math.max(offset, c.chunkOffset);
      const to = Math.min(end, c.chunkOffset + c.chunkSize);
      out.set(datas[k].subarray(from - c.chunkOffset, to - c.chunkOffset), from - offset);
    });
    return out;
  }

  async *stream(path: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const node = this.regular(path);
    for (const ref of node.chunks) {
      const [data] = await this.chunks([{ path: node.path, ref }], signal);
      yield data;
    }
  }

  /** [offset, offset+length) of a file from verified chunks in memory, or undefined. */
  readAtHand(path: string, offset: number, length: number): Uint8Array | undefined {
    const n = this.lookup(path);
    const node = n?.target ?? n;
    if (node?.type !== "reg") return undefined;
    const end = Math.min(node.size, offset + length);
    if (offset >= end) return undefined;
    const out = Buffer.allocUnsafe(end - offset);
    for (const c of node.chunks) {
      if (c.chunkOffset >= end || c.chunkOffset + c.chunkSize <= offset) continue;
      const data = c.chunkDigest ? this.recent.peek(c.chunkDigest) : undefined;
      if (!data) return undefined;
      const from = Math.max(offset, c.chunkOffset);
      const to = Math.min(end, c.chunkOffset + c.chunkSize);
      out.set(data.subarray(from - c.chunkOffset, to - c.chunkOffset), from - offset);
    }
    return out;
  }

  async prefetch(paths: string[], signal?: AbortSignal): Promise<void> {
    const want: Chunk[] = [];
    for (const p of paths) {
      const n = this.lookup(p);
      const r = n?.target ?? n;
      if (r?.type === "reg") for (const ref of r.chunks) want.push({ path: r.path, ref });
    }
    await this.chunks(want, signal);
  }

  /**
   * Verified contents of chunks: from the cache, else by spans. Chunks that share a span
   * are inflated in one pass from its checkpoint; spans are fetched in as few source.read
   * calls as BATCH_BYTES allows, so the source can coalesce them.
   */
  private async chunks(items: Chunk[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const out: (Uint8Array | undefined)[] = await Promise.all(
      items.map(({ ref }) => {
        if (!ref.chunkDigest) return undefined;
        return this.recent.get(ref.chunkDigest) ?? this.cache?.get(ref.chunkDigest);
      }),
    );
    const groups = new Map<number, { span: Span; end: number; members: number[] }>();
    items.forEach(({ ref }, k) => {
      if (out[k]) return;
      if (ref.offset + ref.chunkSize > this.index.uncompressedSize)
        throw new FormatError(`chunk at ${ref.offset} is past the end of the layer's tar`);
      const span = spanFor(this.index, ref.offset, ref.chunkSize);
      const g = groups.get(span.checkpoint);
      if (!g) groups.set(span.checkpoint, { span, end: ref.offset + ref.chunkSize, members: [k] });
      else {
        g.members.push(k);
        g.end = Math.max(g.end, ref.offset + ref.chunkSize);
        if (span.end > g.span.end) g.span = { ...g.span, end: span.end, out: span.out };
      }
    });
    const joins: Promise<void>[] = [];
    for (const [cp, g] of groups) {
      const f = this.inflight.get(cp);
      if (!f || f.out < g.end) continue;
      groups.delete(cp);
      joins.push(
        f.plain.then((plain) => {
          for (const k of g.members) out[k] = this.take(items[k], plain, f.from);
        }),
      );
    }
    const list = [...groups.values()].sort((a, b) => a.span.start - b.span.start);
    // Registered before the fetch starts, so reads arriving meanwhile join it.
    const pending = list.map((g) => {
      let done!: (plain: Uint8Array) => void;
      let fail!: (e: unknown) => void;
      const plain = new Promise<Uint8Array>((res, rej) => {
        done = res;
        fail = rej;
      });
      plain.catch(() => {});
      const from = this.index.checkpoints[g.span.checkpoint].out;
      const f: Inflight = { from, out: g.span.out, plain };
      this.inflight.set(g.span.checkpoint, f);
      void plain.then(
        () => this.inflight.get(g.span.checkpoint) === f && this.inflight.delete(g.span.checkpoint),
        () => this.inflight.get(g.span.checkpoint) === f && this.inflight.delete(g.span.checkpoint),
      );
      return { done, fail, plain };
    });
    try {
      await this.fetchGroups(items, list, pending, out, signal);
    } catch (e) {
      for (const p of pending) p.fail(e);
      // Joined fetches may fail too: handled here, not left as unhandled rejections.
      void Promise.allSettled(joins);
      throw e;
    }
    await Promise.all(joins);
    if (this.cache)
      for (let k = 0; k < items.length; k++) {
        const d = items[k].ref.chunkDigest;
        if (d) await this.cache.put(d, out[k] as Uint8Array);
      }
    return out as Uint8Array[];
  }

  /** A chunk's verified bytes out of inflated text starting at `from`. */
  private take({ path, ref }: Chunk, plain: Uint8Array, from: number): Uint8Array {
    const data = plain.subarray(ref.offset - from, ref.offset - from + ref.chunkSize);
    if (data.length < ref.chunkSize)
      throw new VerificationError(`layer ${this.index.layer.digest}: a span inflated short`);
    check(data, ref, path);
    const copy = Buffer.from(data);
    if (ref.chunkDigest) this.recent.add(ref.chunkDigest, copy);
    return copy;
  }

  /** Fetches and inflates `list`'s spans in batches; settles each `pending` as it goes. */
  private async fetchGroups(
    items: Chunk[],
    list: { span: Span; end: number; members: number[] }[],
    pending: { done: (plain: Uint8Array) => void }[],
    out: (Uint8Array | undefined)[],
    signal?: AbortSignal,
  ): Promise<void> {
    // What each span still needs from the network: past the prefix fetched before, if any.
    const need = list.map((g) => {
      const have = this.prefixes.get(g.span.checkpoint);
      const got = have ? have.bytes.length : 0;
      return {
        have,
        from: g.span.start + got,
        length: Math.max(0, g.span.end - g.span.start - got),
      };
    });
    for (let i = 0; i < list.length; ) {
      let j = i;
      let bytes = 0;
      while (j < list.length && (j === i || bytes + need[j].length <= BATCH_BYTES)) {
        bytes += need[j].length;
        j++;
      }
      const batch = list.slice(i, j);
      const wanted = need.slice(i, j).filter((n) => n.length > 0);
      const bufs =
        wanted.length > 0
          ? await this.source.read(
              wanted.map((n) => ({ offset: n.from, length: n.length })),
              signal,
            )
          : [];
      let next = 0;
      for (let b = 0; b < batch.length; b++) {
        const g = batch[b];
        const { have, length } = need[i + b];
        let prefix: Prefix;
        let fresh = false;
        if (length === 0 && have) prefix = have;
        else {
          const tail = bufs[next++];
          prefix = { bytes: have ? Buffer.concat([have.bytes, tail]) : tail, out: g.span.out };
          fresh = true;
        }
        const span = { ...g.span, end: g.span.start + prefix.bytes.length, out: prefix.out };
        // The whole fetched span is inflated, not only up to the chunks asked for: its
        // other chunks are then cached (the next files read are often in the same span).
        const from = this.index.checkpoints[g.span.checkpoint].out;
        const plain = inflateSpan(this.index, span, prefix.bytes, from, span.out - from);
        if (plain.length < g.end - from)
          throw new VerificationError(`layer ${this.index.layer.digest}: a span inflated short`);
        pending[i + b].done(plain);
        for (const k of g.members) out[k] = this.take(items[k], plain, from);
        // Kept only once the chunks asked for verified: bad bytes are not built upon.
        if (fresh) this.keepPrefix(g.span.checkpoint, g.span.start, prefix);
        await this.cachePassed(from, plain);
      }
      i = j;
    }
  }

  /**
   * Keeps compressed bytes fetched from checkpoint `k` (from `start`): as its prefix, and as
   * the prefix of each later checkpoint they pass (a file that crosses a checkpoint fetched
   * the start of the next span too).
   */
  private keepPrefix(k: number, start: number, prefix: Prefix): void {
    const cps = this.index.checkpoints;
    const end = start + prefix.bytes.length;
    for (let m = k; m < cps.length; m++) {
      const from = m === k ? start : resumeStart(cps[m]);
      if (from >= end) break;
      const held = this.prefixes.peek(m);
      if (held && held.bytes.length >= end - from) continue;
      const bytes = prefix.bytes.subarray(from - start);
      // The longer prefix replaces the shorter (the LRU keeps a held key's value).
      this.prefixes.delete(m);
      this.prefixes.add(m, { bytes, out: prefix.out, byteLength: bytes.length });
    }
  }

  /**
   * Keeps the other chunks wholly inside an inflated range, those whose digest holds: in
   * memory, and in the cache when there is one.
   */
  private async cachePassed(from: number, plain: Uint8Array): Promise<void> {
    const all = this.chunkList();
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (all[mid].ref.offset < from) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < all.length; k++) {
      const { ref } = all[k];
      if (ref.offset + ref.chunkSize > from + plain.length) break;
      if (!ref.chunkDigest) continue;
      const data = plain.subarray(ref.offset - from, ref.offset - from + ref.chunkSize);
      if (this.recent.has(ref.chunkDigest) || sha256Digest(data) !== ref.chunkDigest) continue;
      const copy = Buffer.from(data);
      this.recent.add(ref.chunkDigest, copy);
      if (this.cache) await this.cache.put(ref.chunkDigest, copy);
    }
  }

  private chunkList(): Chunk[] {
    if (!this.byOffset) {
      const list: Chunk[] = [];
      for (const n of this.toc.nodes.values())
        if (n.type === "reg" && !n.target)
          for (const ref of n.chunks) list.push({ path: n.path, ref });
      list.sort((a, b) => a.ref.offset - b.ref.offset);
      this.byOffset = list;
    }
    return this.byOffset;
  }
}

/** Every chunk of an index has a digest: one without is refused, not served unchecked. */
function check(data: Uint8Array, ref: ChunkRef, path: string): void {
  if (!ref.chunkDigest)
    throw new VerificationError(`${path}: chunk at ${ref.chunkOffset} has no digest`);
  verifyChunk(data, ref, path);
}
