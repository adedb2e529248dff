import { BufferRangeSource, type ByteRange, LayerReader, type RangeSource } from "@seekable/format";
import { ImageFS, type MergedNode } from "@seekable/reader";
import { esgzBlob, pseudoRandom } from "@seekable/test-kit/tar.js";
import { describe, expect, it } from "vitest";
import { ChunkPool } from "../src/chunks.js";
import { Content } from "../src/content.js";

/** A source that counts its reads and can be made to fail. */
class Counting implements RangeSource {
  reads = 0;
  fail = false;
  constructor(private readonly inner: RangeSource) {}
  get size() {
    return this.inner.size;
  }
  async read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]> {
    this.reads++;
    if (this.fail) throw new Error("injected failure");
    return this.inner.read(ranges, signal);
  }
}

/** `spareRatio` in members: the budget is about that many 8 KiB members. */
async function setup(members: number) {
  const items = [{ name: "m/" }];
  // Incompressible 8 KiB files: each member is about 8 KiB.
  for (let i = 0; i < 20; i++)
    items.push({ name: `m/f${i}`, body: pseudoRandom(8192, i) } as never);
  const source = new Counting(new BufferRangeSource(await esgzBlob(items)));
  const reader = await LayerReader.open(source);
  // The budget is spareRatio x (footer and TOC bytes, and what was read).
  const base = source.size - reader.footer.tocOffset;
  const pool = new ChunkPool(64 << 20, undefined, {
    enabled: false,
    spareRatio: (members * 8300) / base,
  });
  const content = new Content([{ view: reader, reader }], pool);
  const fs = new ImageFS([reader]);
  const itemsOf = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const m = fs.lookup(`m/f${i}`) as MergedNode;
      return (content.items(m, 0, 8192) ?? [])[0];
    });
  return { source, pool, content, fs, itemsOf, reader };
}

describe("ChunkPool.speculate", () => {
  it("takes guesses only within the neighbour budget, counted unused until a read wants them", async () => {
    const { pool, itemsOf, source, content, fs } = await setup(3.5);
    const budget = pool.neighbourBudget();
    expect(budget).toBeGreaterThan(0);
    const all = itemsOf(20);
    const before = source.reads;
    const { taken, done } = pool.speculate(all);
    await done;
    const bytes = taken.reduce((a, it) => a + (it.ref.nextOffset - it.ref.offset), 0);
    expect(taken.length).toBe(3);
    expect(bytes).toBeLessThanOrEqual(budget);
    expect(pool.unusedBytes).toBe(bytes);
    expect(source.reads - before).toBe(1); // one reader call for every guess
    // A read of a guessed file is served from the pool and turns its bytes into used ones.
    const first = fs.lookup("m/f0") as MergedNode;
    const reads = source.reads;
    await content.read(first, Buffer.alloc(8192), 8192, 0);
    expect(source.reads).toBe(reads);
    expect(pool.unusedBytes).toBe(bytes - (taken[0].ref.nextOffset - taken[0].ref.offset));
  });

  it("a guess that fails releases its budget and is fetched again by the read that wants it", async () => {
    const { pool, itemsOf, source, content, fs } = await setup(100);
    source.fail = true;
    const { taken, done } = pool.speculate(itemsOf(3));
    await done;
    expect(taken.length).toBe(3);
    expect(pool.unusedBytes).toBe(0);
    source.fail = false;
    const m = fs.lookup("m/f1") as MergedNode;
    const buf = Buffer.alloc(8192);
    expect(await content.read(m, buf, 8192, 0)).toBe(8192);
    expect(buf.equals(pseudoRandom(8192, 1))).toBe(true);
  });

  it("a chunk named twice in one get is fetched and inflated once", async () => {
    const { pool, itemsOf, source } = await setup(0);
    const [a] = itemsOf(1);
    const before = source.reads;
    const datas = await pool.get([a, a, a], false);
    expect(source.reads - before).toBe(1);
    expect(datas[0]).toBe(datas[1]);
    expect(datas[1]).toBe(datas[2]);
  });
});
