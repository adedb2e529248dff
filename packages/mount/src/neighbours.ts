import type { ChunkRef, LayerReader, Node } from "@seekable/format";
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

/**
 * The members of a layer's verifiable chunks in blob order, which is TOC order: a
 * directory's files sit together. Built once per layer, on its first miss.
 */
export class MemberIndex {
  readonly members: Member[] = [];

  private constructor(reader: LayerReader) {
    const byOffset = new Map<number, Member>();
    for (const node of reader.walk()) {
      if (node.type !== "reg" || node.chunks.length === 0) continue;
      // Files without chunk digests are verified whole by the reader, never chunk by chunk.
      if (node.chunks.some((c) => !c.chunkDigest)) continue;
      for (const ref of node.chunks) {
        let m = byOffset.get(ref.offset);
        if (!m) {
          m = { offset: ref.offset, nextOffset: ref.nextOffset, dir: dirOf(node.path), chunks: [] };
          byOffset.set(ref.offset, m);
          this.members.push(m);
        }
        m.chunks.push({ node, ref });
      }
    }
    this.members.sort((a, b) => a.offset - b.offset);
  }

  static of(reader: LayerReader): MemberIndex {
    let ix = indexes.get(reader);
    if (!ix) {
      ix = new MemberIndex(reader);
      indexes.set(reader, ix);
    }
    return ix;
  }

  /** Position of the first member at or after `offset`. */
  at(offset: number): number {
    let lo = 0;
    let hi = this.members.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.members[mid].offset < offset) lo = mid + 1;
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
  /** Members looked at in each direction (default 512). */
  /** How far from the miss, in bytes, a neighbour may lie (default 4x the budget). */
  reach?: number;
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
  const { members } = index;
  const scan = opts.scan ?? 512;
  const reach = opts.reach ?? 4 * opts.budget;
  const cap = Math.min(opts.maxMember, opts.budget);
  const candidates: { m: Member; cost: number }[] = [];
  const consider = (m: Member, distance: number, weight: number) => {
    if (m.nextOffset - m.offset > cap || opts.skip(m)) return;
    candidates.push({ m, cost: (distance + 1) * weight * (related(m.dir, dir) ? 1 : 4) });
  };
  const after = index.at(to);
  for (let i = after; i < members.length && i - after < scan; i++) {
    const d = members[i].offset - to;
    if (d > reach) break;
    consider(members[i], d, 1);
  }
  const before = index.at(from) - 1;
  for (let i = before; i >= 0 && before - i < scan; i--) {
    const d = from - members[i].nextOffset;
    if (d > reach) break;
    consider(members[i], d, 2);
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
    for (let i = index.at(a); i < members.length && members[i].offset < b; i++) {
      const m = members[i];
      if (!chosen.has(m) && !opts.skip(m)) chosen.add(m);
    }
  }
  return [...chosen].sort((a, b) => a.offset - b.offset);
}
