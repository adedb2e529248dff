import { gzipSync } from "node:zlib";
import {
  BufferRangeSource,
  type ByteRange,
  buildGzipIndex,
  FormatError,
  type RangeSource,
  spanFor,
  VerificationError,
} from "@seekable/format";
import { makeTar, pseudoRandom, sha } from "@seekable/test-kit/tar.js";
import { describe, expect, it } from "vitest";
import { IndexedLayer, MemoryChunkCache } from "../src/index.js";

async function* pieces(b: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += 1 << 16) yield b.subarray(i, i + (1 << 16));
}

/** Counts the reads and bytes a layer asks of its source. */
class Counting implements RangeSource {
  reads = 0;
  bytes = 0;
  constructor(private readonly inner: RangeSource) {}
  get size(): number {
    return this.inner.size;
  }
  read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]> {
    this.reads++;
    for (const r of ranges) this.bytes += r.length;
    return this.inner.read(ranges, signal);
  }
}

const files = new Map<string, Buffer>();
for (let i = 0; i < 60; i++)
  files.set(
    `lib/f${i}.txt`,
    i % 5 === 0
      ? pseudoRandom(40_000, i)
      : Buffer.from(`${i} `.repeat(5_000 + i * 300) + pseudoRandom(2000, i).toString("hex")),
  );

async function layer() {
  const tar = await makeTar([
    { name: "lib/" },
    ...[...files].map(([name, body]) => ({ name, body })),
    { name: "lib/link", type: "link" as const, linkname: "lib/f3.txt" },
  ]);
  const gz = gzipSync(tar);
  const ix = await buildGzipIndex(pieces(gz), { spanSize: 64 * 1024 });
  return { gz, ix };
}

describe("IndexedLayer", () => {
  it("reads files and ranges through the index, each span fetched once per batch", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    for (const [name, body] of files) expect(sha(await l.read(name)), name).toBe(sha(body));
    const f = files.get("lib/f7.txt") as Buffer;
    expect(Buffer.from(await l.read("lib/f7.txt", 1000, 5000)).equals(f.subarray(1000, 6000))).toBe(
      true,
    );
    expect(Buffer.from(await l.read("lib/link")).equals(files.get("lib/f3.txt") as Buffer)).toBe(
      true,
    );
    expect(l.lookup("lib/f9.txt")?.size).toBe(files.get("lib/f9.txt")?.length);
    expect([...l.walk()].length).toBe(files.size + 3);
  });

  it("caches the other chunks of a fetched span: files beside it cost no read", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src, new MemoryChunkCache());
    // The files wholly inside the span fetched for `name`.
    const besideOf = (name: string) => {
      const c = l.lookup(name)?.chunks[0];
      if (!c) throw new Error(`no chunk in ${name}`);
      const span = spanFor(ix, c.offset, c.chunkSize);
      const from = ix.checkpoints[span.checkpoint].out;
      const beside = [...files.keys()].filter((n) => {
        const d = l.lookup(n)?.chunks[0];
        return d && n !== name && d.offset >= from && d.offset + d.chunkSize <= span.out;
      });
      return { span, beside };
    };
    const target = [...files.keys()].find((n) => besideOf(n).beside.length >= 2);
    if (!target) throw new Error("no span holds three files");
    const { span, beside } = besideOf(target);
    await l.read(target);
    const reads = src.reads;
    for (const n of beside) expect(sha(await l.read(n))).toBe(sha(files.get(n) as Buffer));
    expect(src.reads).toBe(reads);
    // The fetch ended at the input-end mark after the file, before the next checkpoint.
    expect(span.end).toBeLessThanOrEqual(ix.checkpoints[span.checkpoint + 1]?.in ?? ix.layer.size);
  });

  it("prefetch fetches many files' spans in one read", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src, new MemoryChunkCache());
    await l.prefetch([...files.keys()]);
    expect(src.reads).toBe(1);
    for (const [name, body] of files) expect(sha(await l.read(name))).toBe(sha(body));
    expect(src.reads).toBe(1);
  });

  it("without a cache, a span's other files are kept in memory: reading them costs no read", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    await l.prefetch([...files.keys()]);
    expect(src.reads).toBe(1);
    for (const [name, body] of files) {
      expect(sha(l.readAtHand(name, 0, body.length) as Uint8Array), name).toBe(sha(body));
      expect(sha(await l.read(name)), name).toBe(sha(body));
    }
    expect(src.reads).toBe(1);
    const f = files.get("lib/f7.txt") as Buffer;
    expect(Buffer.from(l.readAtHand("lib/f7.txt", 10, 100) as Uint8Array)).toEqual(
      f.subarray(10, 110),
    );
  });

  it("readAtHand is undefined until a file's chunks are in memory", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    expect(l.readAtHand("lib/f3.txt", 0, 10)).toBeUndefined();
    expect(l.readAtHand("lib", 0, 10)).toBeUndefined();
    expect(src.reads).toBe(0);
  });

  it("concurrent reads of files in one span share one fetch of it", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    // Files of the first span: the last one read first, so its fetch covers the others.
    const first = [...files.keys()].filter((n) => {
      const c = l.lookup(n)?.chunks[0];
      return c && spanFor(ix, c.offset, c.chunkSize).checkpoint === 0;
    });
    expect(first.length).toBeGreaterThanOrEqual(3);
    const got = await Promise.all(first.reverse().map((n) => l.read(n)));
    first.forEach((n, k) => {
      expect(sha(got[k]), n).toBe(sha(files.get(n) as Buffer));
    });
    expect(src.reads).toBe(1);
  });

  it("a later read in a span fetches only what lies past the bytes fetched before", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    const spanOf = (n: string) => {
      const c = l.lookup(n)?.chunks[0];
      if (!c) throw new Error(`no chunk in ${n}`);
      return spanFor(ix, c.offset, c.chunkSize);
    };
    const first = [...files.keys()].filter((n) => spanOf(n).checkpoint === 0);
    const a = first[0];
    const b = first[first.length - 1];
    expect(spanOf(b).end).toBeGreaterThan(spanOf(a).end);
    expect(sha(await l.read(a))).toBe(sha(files.get(a) as Buffer));
    expect(src.bytes).toBe(spanOf(a).end - spanOf(a).start);
    expect(sha(await l.read(b))).toBe(sha(files.get(b) as Buffer));
    expect(src.reads).toBe(2);
    // Not the prefix twice: from the checkpoint to b's end, once.
    expect(src.bytes).toBe(spanOf(b).end - spanOf(b).start);
  });

  it("reading every file in turn fetches no compressed byte twice", async () => {
    const { gz, ix } = await layer();
    const src = new Counting(new BufferRangeSource(gz));
    const l = new IndexedLayer(ix, src);
    for (const [name, body] of files) expect(sha(await l.read(name)), name).toBe(sha(body));
    // A checkpoint in mid-byte shares that byte with the span before it.
    expect(src.bytes).toBeLessThanOrEqual(gz.length + ix.checkpoints.length);
  });

  it("reads joining a fetch of corrupt bytes fail too, never output", async () => {
    const { gz, ix } = await layer();
    const bad = Buffer.from(gz);
    for (let i = 100; i < bad.length - 100; i += 997) bad[i] ^= 0x20;
    const src = new Counting(new BufferRangeSource(bad));
    const l = new IndexedLayer(ix, src);
    const first = [...files.keys()].filter((n) => {
      const c = l.lookup(n)?.chunks[0];
      return c && spanFor(ix, c.offset, c.chunkSize).checkpoint === 0;
    });
    const settled = await Promise.allSettled(first.reverse().map((n) => l.read(n)));
    for (const r of settled) expect(r.status).toBe("rejected");
    for (const n of first) expect(l.readAtHand(n, 0, 1)).toBeUndefined();
  });

  it("a read that joins one failing fetch and makes another failing one rejects once, nothing unhandled", async () => {
    const { gz, ix } = await layer();
    const bad = Buffer.from(gz);
    for (let i = 100; i < bad.length - 100; i += 997) bad[i] ^= 0x20;
    const l = new IndexedLayer(ix, new BufferRangeSource(bad));
    const inSpan = (k: number) =>
      [...files.keys()].filter((n) => {
        const c = l.lookup(n)?.chunks[0];
        return c && spanFor(ix, c.offset, c.chunkSize).checkpoint === k;
      });
    const [a, b] = inSpan(0).reverse();
    const [c] = inSpan(1);
    const unhandled: unknown[] = [];
    const note = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", note);
    try {
      const settled = await Promise.allSettled([l.read(a), l.prefetch([b, c])]);
      expect(settled.map((r) => r.status)).toEqual(["rejected", "rejected"]);
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", note);
    }
  });

  it("corrupt span bytes are a verification error, never output", async () => {
    const { gz, ix } = await layer();
    const bad = Buffer.from(gz);
    for (let i = 100; i < bad.length - 100; i += 997) bad[i] ^= 0x20;
    const l = new IndexedLayer(ix, new BufferRangeSource(bad), new MemoryChunkCache());
    for (const name of files.keys()) {
      const err = await l.read(name).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(FormatError);
    }
    const it = l.stream("lib/f10.txt")[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toBeInstanceOf(FormatError);
  });

  it("an index claiming a huge span is a FormatError at read, never a huge allocation", async () => {
    const { gz, ix } = await layer();
    const hostile = { ...ix, uncompressedSize: 2 ** 40, marks: [] };
    const l = new IndexedLayer(hostile, new BufferRangeSource(gz));
    await expect(l.read("lib/f59.txt")).rejects.toThrow(/uncompressed bytes \(more than/);
  });

  it("refuses a source that is not the indexed layer's size", async () => {
    const { gz, ix } = await layer();
    expect(() => new IndexedLayer(ix, new BufferRangeSource(gz.subarray(1)))).toThrow(/index says/);
    await expect(Promise.resolve()).resolves.toBeUndefined();
    expect(VerificationError).toBeDefined();
  });
});
