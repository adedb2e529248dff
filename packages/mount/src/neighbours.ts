import type { ChunkRef, LayerChunks, LayerReader, Node } from "@seekable/format";
import { DEFAULT_GAP } from "@seekable/registry";

/** One gzip member of a layer and the chunks it holds (several only with MinChunkSize). */
export interface Member {
  offset: number;
  nextOffset: number;
  /** Directory of the (first) file the member belongs to. */
  dir: string;
  chunks: { node: Node; ref: ChunkRef }[];
}

const indexes = new WeakMap<LayerReader, MemberIndex>();

function dirOf(path: string): string {
  return path.slice(0, Math.max(0, path.lastIndexOf("/")));
}

/** A member made on first use: its directory and chunks are read when asked for. */
class LazyMember implements Member {
  private chunkList: Member["chunks"] | undefined;
  private dirName: string | undefined;
  constructor(
    readonly offset: number,
    readonly nextOffset: number,
    private readonly list: LayerChunks,
    /** Positions in `list` of the member's chunks. */
    private readonly at: Int32Array,
  ) {}
  get chunks(): Member["chunks"] {
    if (this.chunkList === undefined)
      this.chunkList = Array.from(this.at, (i) => this.list.chunk(i));
    return this.chunkList;
  }
  get dir(): string {
    // The directory of the (first) file the member belongs to.
    this.dirName ??= dirOf(this.list.chunk(this.at[0]).node.path);
    return this.dirName;
  }
}

/**
 * The members of a layer's verifiable chunks in blob order, which is TOC order: a
 * directory's files sit together. Built once per layer, on its first miss, from the TOC
 * index's tables: offsets only, no node, chunk ref or member object until a miss looks at
 * that member (walking every node cost ~24 ms on a first miss, on the path of a FUSE
 * read). Files without chunk digests are verified whole by the reader, never chunk by
 * chunk, and are left out.
 */
export class MemberIndex {
  /** Members, as many as `offsets`. */
  readonly length: number;
  /** Each member's offset and end, ascending by offset. */
  private readonly offsets: Float64Array;
  private readonly ends: Float64Array;
  /**
   * Member m's chunks are list positions order[first[m]] .. order[first[m + 1] - 1]; when
   * absent, member m is chunk m.
   */
  private readonly first: Int32Array | undefined;
  private readonly order: Int32Array | undefined;
  private readonly made: (Member | undefined)[];
  private readonly list: LayerChunks;

  private constructor(reader: LayerReader) {
    const list = reader.chunkTable();
    this.list = list;
    const n = list.count;
    const off = list.offset;
    let ascending = true;
    for (let i = 1; i < n && ascending; i++) ascending = off[i] > off[i - 1];
    if (ascending) {
      // The usual layer: one chunk per member, in blob order. Member i is chunk i.
      this.length = n;
      this.offsets = off instanceof Float64Array ? off : Float64Array.from(off);
      this.ends =
        list.nextOffset instanceof Float64Array
          ? list.nextOffset
          : Float64Array.from(list.nextOffset);
      this.made = new Array(n);
      return;
    }
    // Chunks by offset (stable: a member's chunks, and its end and directory, as walked).
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => off[a] - off[b] || a - b);
    const first = new Int32Array(n + 1);
    const offsets = new Float64Array(n);
    const ends = new Float64Array(n);
    let m = 0;
    for (let i = 0; i < n; i++) {
      const c = order[i];
      if (m > 0 && offsets[m - 1] === off[c]) continue;
      first[m] = i;
      offsets[m] = off[c];
      ends[m] = list.nextOffset[c];
      m++;
    }
    first[m] = n;
    this.length = m;
    this.offsets = offsets.subarray(0, m);
    this.ends = ends.subarray(0, m);
    this.first = first;
    this.order = order;
    this.made = new Array(m);
  }

  static of(reader: LayerReader): MemberIndex {
    let ix = indexes.get(reader);
    if (!ix) {
      ix = new MemberIndex(reader);
      indexes.set(reader, ix);
    }
    return ix;
  }

  /** Member i (made once). */
  member(i: number): Member {
    let m = this.made[i];
    if (m === undefined) {
      m = new LazyMember(
        this.offsets[i],
        this.ends[i],
        this.list,
        this.order && this.first
          ? this.order.subarray(this.first[i], this.first[i + 1])
          : Int32Array.of(i),
      );
      this.made[i] = m;
    }
    return m;
  }

  /** Every member, in blob order (makes them all: for tests and tools). */
  get members(): Member[] {
    return Array.from({ length: this.length }, (_, i) => this.member(i));
  }

  offsetOf(i: number): number {
    return this.offsets[i];
  }

  nextOffsetOf(i: number): number {
    return this.ends[i];
  }

  /** Position of the first member at or after `offset`. */
  at(offset: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export interface PickOptions {
  /** Compressed bytes the neighbours may add to the fetch. */
  budget: number;
  /** Members larger than this are never taken (a huge neighbour is left for its own read). */
  maxMember: number;
  /** Members already at hand, in flight, or covered by a pending prefetch. */
  skip(m: Member): boolean;
  /** Ranges closer than this are fetched as one by the source (default 32 KiB). */
  gap?: number;
  /** How far from the miss, in bytes, a neighbour may lie (default 4x the budget). */
  reach?: number;
  /** Members looked at in each direction (default 512). */
  scan?: number;
}

/** Same directory, or one directly inside the other (a package and its __pycache__). */
function related(a: string, b: string): boolean {
  if (a === b) return true;
  const [outer, inner] = a.length < b.length ? [a, b] : [b, a];
  const rest =
    outer === ""
      ? inner
      : inner.startsWith(`${outer}/`)
        ? inner.slice(outer.length + 1)
        : undefined;
  return rest !== undefined && !rest.includes("/");
}

/**
 * The members worth bringing along with a miss on the members spanning [from, to) of a
 * file in `dir`, at most `budget` bytes in all. Candidates are the small members around
 * the miss in blob order (TOC order: a directory's files together), nearest first, the same
 * directory (or its parent or subdirectories) before others, those after the miss before
 * those before it; a member larger than `maxMember` is never taken. Returned in blob order.
 */
export function pickNeighbours(
  index: MemberIndex,
  from: number,
  to: number,
  dir: string,
  opts: PickOptions,
): Member[] {
  const scan = opts.scan ?? 512;
  const reach = opts.reach ?? 4 * opts.budget;
  const cap = Math.min(opts.maxMember, opts.budget);
  const candidates: { m: Member; cost: number }[] = [];
  const consider = (m: Member, distance: number, weight: number) => {
    if (m.nextOffset - m.offset > cap || opts.skip(m)) return;
    candidates.push({ m, cost: (distance + 1) * weight * (related(m.dir, dir) ? 1 : 4) });
  };
  const after = index.at(to);
  for (let i = after; i < index.length && i - after < scan; i++) {
    const d = index.offsetOf(i) - to;
    if (d > reach) break;
    if (index.nextOffsetOf(i) - index.offsetOf(i) <= cap) consider(index.member(i), d, 1);
  }
  const before = index.at(from) - 1;
  for (let i = before; i >= 0 && before - i < scan; i--) {
    const d = from - index.nextOffsetOf(i);
    if (d > reach) break;
    if (index.nextOffsetOf(i) - index.offsetOf(i) <= cap) consider(index.member(i), d, 2);
  }
  candidates.sort((a, b) => a.cost - b.cost);
  const chosen = new Set<Member>();
  let left = opts.budget;
  for (const { m } of candidates) {
    const size = m.nextOffset - m.offset;
    if (size > left) continue;
    chosen.add(m);
    left -= size;
    if (left < 512) break;
  }
  // Gaps small enough for the source to fetch anyway (it coalesces ranges closer than
  // `gap`): their members come along, counted, instead of as bytes nobody keeps.
  const gap = opts.gap ?? DEFAULT_GAP;
  const spans = [...chosen].map((m) => [m.offset, m.nextOffset]);
  spans.push([from, to]);
  spans.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < spans.length; k++) {
    const [a, b] = [spans[k - 1][1], spans[k][0]];
    if (b <= a || b - a > gap) continue;
    for (let i = index.at(a); i < index.length && index.offsetOf(i) < b; i++) {
      const m = index.member(i);
      if (!chosen.has(m) && !opts.skip(m)) chosen.add(m);
    }
  }
  return [...chosen].sort((a, b) => a.offset - b.offset);
}
