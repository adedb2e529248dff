import { BufferRangeSource, type ChunkRef, LayerReader, type Node } from "@seekable/format";
import { esgzBlob, pseudoRandom, type TarItem } from "@seekable/test-kit/tar.js";
import { describe, expect, it } from "vitest";
import { type Member, MemberIndex, pickNeighbours } from "../src/neighbours.js";

/** The index as it was built before: every node walked, members by offset. */
function walkedMembers(reader: { walk(): Iterable<Node> }): Member[] {
  const byOffset = new Map<number, Member>();
  const members: Member[] = [];
  for (const node of reader.walk()) {
    if (node.type !== "reg" || node.chunks.length === 0) continue;
    if (node.chunks.some((c) => !c.chunkDigest)) continue;
    for (const ref of node.chunks) {
      let m = byOffset.get(ref.offset);
      if (!m) {
        const dir = node.path.slice(0, Math.max(0, node.path.lastIndexOf("/")));
        m = { offset: ref.offset, nextOffset: ref.nextOffset, dir, chunks: [] };
        byOffset.set(ref.offset, m);
        members.push(m);
      }
      m.chunks.push({ node, ref });
    }
  }
  return members.sort((a, b) => a.offset - b.offset);
}

const plain = (ms: Member[]) =>
  ms.map((m) => ({
    offset: m.offset,
    nextOffset: m.nextOffset,
    dir: m.dir,
    chunks: m.chunks.map((c) => ({ path: c.node.path, ref: c.ref })),
  }));

async function layer(): Promise<LayerReader> {
  const items: TarItem[] = [];
  for (let d = 0; d < 6; d++) {
    items.push({ name: `pkg${d}/` }, { name: `pkg${d}/sub/` });
    for (let f = 0; f < 30; f++) {
      const size = 100 + ((f * 7919 + d * 104729) % 6000);
      items.push({
        name: `pkg${d}/${f % 3 ? "" : "sub/"}m${f}.py`,
        body: pseudoRandom(size, d * 100 + f),
      });
    }
    items.push({ name: `pkg${d}/big.bin`, body: pseudoRandom(300_000, d) });
    items.push({ name: `pkg${d}/empty` });
  }
  const blob = await esgzBlob(items, { chunkSize: 64 << 10 });
  return LayerReader.open(new BufferRangeSource(blob));
}

describe("MemberIndex", () => {
  it("built from the TOC index's tables gives the members a walk of every node gave", async () => {
    const reader = await layer();
    expect((reader.root as { tocIndex?: unknown }).tocIndex).toBeDefined();
    const ix = MemberIndex.of(reader);
    expect(MemberIndex.of(reader)).toBe(ix);
    const want = walkedMembers(reader);
    expect(want.length).toBeGreaterThan(100);
    expect(plain(ix.members)).toEqual(plain(want));
    // Members are made once: pickNeighbours' sets of members rely on it.
    expect(ix.member(3)).toBe(ix.member(3));
  });

  it("groups chunks sharing a member, in walk order, whatever the order of offsets", () => {
    const ref = (offset: number, nextOffset: number, chunkOffset = 0): ChunkRef => ({
      offset,
      nextOffset,
      innerOffset: chunkOffset,
      chunkOffset,
      chunkSize: 10,
      chunkDigest: `sha256:${"0".repeat(64)}`,
    });
    const file = (path: string, ...chunks: ChunkRef[]) =>
      ({ path, type: "reg", chunks }) as unknown as Node;
    const nodes = [
      file("a/x", ref(500, 600)),
      file("b/y", ref(100, 200), ref(100, 200, 10)),
      file("c/z", ref(100, 200, 20)),
      { path: "d/nodigest", type: "reg", chunks: [{ ...ref(300, 400), chunkDigest: undefined }] },
      file("e/w", ref(50, 100)),
    ] as Node[];
    // A chunk table in walk order, offsets unsorted (what LayerReader.chunkTable promises).
    const all = nodes.flatMap((node) =>
      node.chunks.every((c) => c.chunkDigest) ? node.chunks.map((ref) => ({ node, ref })) : [],
    );
    const chunkTable = () => ({
      count: all.length,
      offset: all.map((c) => c.ref.offset),
      nextOffset: all.map((c) => c.ref.nextOffset),
      chunk: (i: number) => all[i],
    });
    const reader = { root: { path: "" }, walk: () => nodes, chunkTable } as unknown as LayerReader;
    const ix = MemberIndex.of(reader);
    expect(plain(ix.members)).toEqual(plain(walkedMembers(reader)));
    expect(ix.members.map((m) => m.offset)).toEqual([50, 100, 500]);
    expect(ix.at(101)).toBe(2);
  });

  it("pickNeighbours picks what it picked over the walked members", async () => {
    const reader = await layer();
    const ix = MemberIndex.of(reader);
    const ms = ix.members;
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let t = 0; t < 300; t++) {
      const i = rand(ms.length);
      const j = Math.min(ms.length - 1, i + rand(3));
      const dir = ms[i].dir;
      const budget = 512 + rand(64 << 10);
      const skipped = new Set(Array.from({ length: rand(20) }, () => ms[rand(ms.length)].offset));
      const opts = {
        budget,
        maxMember: 1 + rand(32 << 10),
        reach: rand(2) ? undefined : 1 + rand(64 << 10),
        skip: (m: Member) => skipped.has(m.offset),
      };
      const got = pickNeighbours(ix, ms[i].offset, ms[j].nextOffset, dir, opts);
      const want = referencePick(walkedMembers(reader), ms[i].offset, ms[j].nextOffset, dir, opts);
      expect(got.map((m) => m.offset)).toEqual(want);
    }
  });
});

/** pickNeighbours as it was, over a plain array of members: the offsets it picks. */
function referencePick(
  members: Member[],
  from: number,
  to: number,
  dir: string,
  opts: { budget: number; maxMember: number; reach?: number; skip(m: Member): boolean },
): number[] {
  const at = (offset: number) => {
    let i = 0;
    while (i < members.length && members[i].offset < offset) i++;
    return i;
  };
  const related = (a: string, b: string) => {
    if (a === b) return true;
    const [outer, inner] = a.length < b.length ? [a, b] : [b, a];
    const rest =
      outer === ""
        ? inner
        : inner.startsWith(`${outer}/`)
          ? inner.slice(outer.length + 1)
          : undefined;
    return rest !== undefined && !rest.includes("/");
  };
  const reach = opts.reach ?? 4 * opts.budget;
  const cap = Math.min(opts.maxMember, opts.budget);
  const candidates: { m: Member; cost: number }[] = [];
  const consider = (m: Member, distance: number, weight: number) => {
    if (m.nextOffset - m.offset > cap || opts.skip(m)) return;
    candidates.push({ m, cost: (distance + 1) * weight * (related(m.dir, dir) ? 1 : 4) });
  };
  const after = at(to);
  for (let i = after; i < members.length && i - after < 512; i++) {
    const d = members[i].offset - to;
    if (d > reach) break;
    consider(members[i], d, 1);
  }
  const before = at(from) - 1;
  for (let i = before; i >= 0 && before - i < 512; i--) {
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
  const gap = 32 << 10;
  const spans = [...chosen].map((m) => [m.offset, m.nextOffset]);
  spans.push([from, to]);
  spans.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < spans.length; k++) {
    const [a, b] = [spans[k - 1][1], spans[k][0]];
    if (b <= a || b - a > gap) continue;
    for (let i = at(a); i < members.length && members[i].offset < b; i++) {
      const m = members[i];
      if (!chosen.has(m) && !opts.skip(m)) chosen.add(m);
    }
  }
  return [...chosen].sort((a, b) => a.offset - b.offset).map((m) => m.offset);
}
