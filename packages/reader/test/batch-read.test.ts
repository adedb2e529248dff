import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  type ByteRange,
  type ByteSink,
  convertLayer,
  FileRangeSource,
  fileInput,
  LayerReader,
  type RangeSource,
} from "@seekable/format";
import { type FileRef, ImageFS, readFiles, WholeLayer } from "@seekable/reader";
import { rewriteBlob } from "@seekable/test-kit/hostile.js";
import { makeTar, pseudoRandom } from "@seekable/test-kit/tar.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/** A local blob that records every range read (the offsets a registry would be asked for). */
class RecordingSource implements RangeSource {
  readonly reads: ByteRange[][] = [];
  constructor(private readonly inner: RangeSource) {}
  get size(): number {
    return this.inner.size;
  }
  read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]> {
    this.reads.push(ranges);
    return this.inner.read(ranges, signal);
  }
  /** Offsets read more than once. */
  twice(): number[] {
    const seen = new Set<number>();
    const again: number[] = [];
    for (const r of this.reads.flat()) {
      if (seen.has(r.offset)) again.push(r.offset);
      seen.add(r.offset);
    }
    return again;
  }
}

let dir: string;
const contents = new Map<string, Buffer>();
const blobs: string[] = [];
let plainTarGz: string;

async function toEStargz(tar: Buffer, name: string): Promise<string> {
  const inPath = join(dir, `${name}.tar`);
  await writeFile(inPath, tar);
  const parts: Buffer[] = [];
  const sink: ByteSink & { reset(): Promise<void> } = {
    async write(d) {
      parts.push(Buffer.from(d));
    },
    async reset() {
      parts.length = 0;
    },
  };
  await convertLayer(fileInput(inPath), sink, { chunkSize: 4096 });
  const out = join(dir, `${name}.esgz`);
  await writeFile(out, Buffer.concat(parts));
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seekable-batch-"));
  for (let l = 0; l < 2; l++) {
    const items: { name: string; body?: Buffer; type?: "link"; linkname?: string }[] = [
      { name: `l${l}/` },
    ];
    for (let i = 0; i < 30; i++) {
      const body = pseudoRandom(1000 + i * 700, l * 100 + i);
      items.push({ name: `l${l}/f${i}`, body });
      contents.set(`l${l}/f${i}`, body);
    }
    items.push({ name: `l${l}/empty`, body: Buffer.alloc(0) });
    contents.set(`l${l}/empty`, Buffer.alloc(0));
    items.push({ name: `l${l}/hard`, type: "link", linkname: `l${l}/f3` });
    contents.set(`l${l}/hard`, contents.get(`l${l}/f3`) as Buffer);
    blobs.push(await toEStargz(await makeTar(items), `l${l}`));
  }
  const plain = await makeTar([{ name: "p/" }, { name: "p/x", body: "plain layer" }]);
  plainTarGz = join(dir, "plain.tar.gz");
  await writeFile(plainTarGz, gzipSync(plain));
  contents.set("p/x", Buffer.from("plain layer"));
});

/** Every file a test opened, closed after it (an unclosed FileHandle warns on GC). */
const opened: FileRangeSource[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((f) => f.close()));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function open(paths = blobs) {
  const sources: RecordingSource[] = [];
  const readers: LayerReader[] = [];
  for (const p of paths) {
    const file = await FileRangeSource.open(p);
    opened.push(file);
    const src = new RecordingSource(file);
    sources.push(src);
    readers.push(await LayerReader.open(src));
  }
  for (const s of sources) s.reads.length = 0; // only what readFiles reads
  return { sources, readers, fs: new ImageFS(readers) };
}

function refs(fs: ImageFS, paths: string[]): FileRef[] {
  return paths.map((p) => {
    const m = fs.lookup(p);
    if (!m) throw new Error(p);
    return { layer: m.layer, path: m.node.path };
  });
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Every file of both layers, interleaved and out of blob order, a few listed twice. */
function shuffledList(): string[] {
  const list: string[] = [];
  // 7 and 11 are prime to 30: two permutations of the 30 files.
  for (let i = 0; i < 30; i++) list.push(`l0/f${(i * 7) % 30}`, `l1/f${(i * 11) % 30}`);
  list.push("l0/empty", "l1/hard", "l0/f3", "l1/f10");
  return list;
}

describe("readFiles", () => {
  it("yields the files in order, each member read once, in a few windows", async () => {
    const { sources, fs } = await open();
    const list = shuffledList();
    const want = Buffer.concat(list.map((p) => contents.get(p) as Buffer));
    const got = await collect(readFiles(refs(fs, list), { windowBytes: 64 << 10 }));
    expect(got.equals(want)).toBe(true);
    for (const s of sources) expect(s.twice()).toEqual([]);
    // 30 files of ~11 KiB each per layer in 64 KiB windows: a few reads, not one per file.
    for (const s of sources) expect(s.reads.length).toBeLessThan(20);
  });

  it("stays right when windows are smaller than a chunk and the carry overflows", async () => {
    const { fs } = await open();
    const list = shuffledList();
    const want = Buffer.concat(list.map((p) => contents.get(p) as Buffer));
    const got = await collect(readFiles(refs(fs, list), { windowBytes: 1 }));
    expect(got.equals(want)).toBe(true);
  });

  it("mixes in a layer streamed whole", async () => {
    const { fs: esgz } = await open();
    const whole = await WholeLayer.load(createReadStream(plainTarGz));
    try {
      const list: FileRef[] = [
        ...refs(esgz, ["l1/f2"]),
        { layer: whole, path: "p/x" },
        ...refs(esgz, ["l0/f5"]),
      ];
      const got = await collect(readFiles(list));
      expect(got.toString("latin1")).toBe(
        Buffer.concat([
          contents.get("l1/f2") as Buffer,
          contents.get("p/x") as Buffer,
          contents.get("l0/f5") as Buffer,
        ]).toString("latin1"),
      );
    } finally {
      await whole.close();
    }
  });

  it("refuses a missing file or a directory before any output", async () => {
    const { readers } = await open();
    const r = readers[0] as LayerReader;
    let yielded = 0;
    const run = async (paths: string[]) => {
      for await (const _ of readFiles(paths.map((path) => ({ layer: r, path })))) yielded++;
    };
    await expect(run(["l0/f1", "l0/nope"])).rejects.toThrow(/no such file/);
    await expect(run(["l0/f1", "l0"])).rejects.toThrow(/not a regular file/);
    expect(yielded).toBe(0);
  });

  it("fails on a corrupted member, never yielding its bytes", async () => {
    const bad = join(dir, "bad.esgz");
    const data = Buffer.from(await readFile(blobs[0] as string));
    const { readers } = await open([blobs[0] as string]);
    const ref = (readers[0] as LayerReader).lookup("l0/f20")?.chunks[1];
    if (!ref) throw new Error("no chunk");
    data[ref.offset + 30] ^= 0xff;
    await writeFile(bad, data);
    const { fs } = await open([bad]);
    const parts: Buffer[] = [];
    const run = async () => {
      for await (const c of readFiles(refs(fs, ["l0/f1", "l0/f20", "l0/f2"]), { windowBytes: 1 }))
        parts.push(Buffer.from(c));
    };
    await expect(run()).rejects.toThrow(/digest|gzip|corrupt/);
    const good = Buffer.concat([
      contents.get("l0/f1") as Buffer,
      (contents.get("l0/f20") as Buffer).subarray(0, 4096),
    ]);
    expect(Buffer.concat(parts).equals(good.subarray(0, Buffer.concat(parts).length))).toBe(true);
    expect(Buffer.concat(parts).length).toBeLessThanOrEqual(good.length);
  });

  it("names the entry whose offset cuts a member short", async () => {
    const cut = join(dir, "cut.esgz");
    const blob = await rewriteBlob(await readFile(blobs[0] as string), ({ toc }) => {
      const last = toc.entries.filter((e) => e.name === "l0/f5").pop();
      const next = toc.entries.find((e) => e.name === "l0/f6");
      if (!last?.offset || !next) throw new Error("no entries");
      next.offset = last.offset + 50; // into the middle of f5's last member
    });
    await writeFile(cut, blob);
    const { fs } = await open([cut]);
    await expect(collect(readFiles(refs(fs, ["l0/f1", "l0/f5"])))).rejects.toThrow(
      /l0\/f6: chunk offset \d+ points into the middle/,
    );
  });

  it("stops fetching when the consumer stops early", async () => {
    const { sources, fs } = await open();
    const list = shuffledList();
    for await (const _ of readFiles(refs(fs, list), { windowBytes: 8 << 10 })) break;
    const reads = sources.reduce((n, s) => n + s.reads.length, 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(sources.reduce((n, s) => n + s.reads.length, 0)).toBe(reads);
    // Only the first window and the one fetched ahead, of the many a whole pass reads.
    const whole = await open();
    await collect(readFiles(refs(whole.fs, list), { windowBytes: 8 << 10 }));
    const all = whole.sources.reduce((n, s) => n + s.reads.length, 0);
    expect(reads).toBeLessThan(all / 3);
  });
});
