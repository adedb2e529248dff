import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  type ByteSink,
  convertLayer,
  FileRangeSource,
  fileInput,
  LayerReader,
} from "@seekable/format";
import {
  CountingSource,
  DiskChunkCache,
  ImageFS,
  type LayerView,
  MemoryChunkCache,
  ReadStats,
  TieredChunkCache,
  WholeLayer,
} from "@seekable/reader";
import { makeTar } from "@seekable/test-kit/tar.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

let dir: string;
const layersTar: Buffer[] = [];

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
  await convertLayer(fileInput(inPath), sink, { chunkSize: 1000 });
  const out = join(dir, `${name}.esgz`);
  await writeFile(out, Buffer.concat(parts));
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seekable-reader-"));
  layersTar.push(
    await makeTar([
      { name: "etc/" },
      { name: "etc/passwd", body: "root:x:0:0\n" },
      { name: "etc/old", body: "old" },
      { name: "opt/" },
      { name: "opt/app/" },
      { name: "opt/app/a", body: "a".repeat(5000) },
      { name: "opt/app/sub/" },
      { name: "opt/app/sub/b", body: "b" },
      { name: "var/" },
      { name: "var/x", body: "x1" },
    ]),
    await makeTar([
      { name: "etc/" },
      { name: "etc/.wh.old", body: "" },
      { name: "opt/app/" },
      { name: "opt/app/.wh..wh..opq", body: "" },
      { name: "opt/app/c", body: "c" },
      { name: "var/x", body: "x2" },
      { name: "var/hl", type: "link", linkname: "var/x" },
    ]),
    await makeTar([
      { name: "var/", type: "directory" },
      { name: "var/.wh.x", body: "" },
      { name: "usr/" },
      { name: "usr/link", type: "symlink", linkname: "../etc/passwd" },
    ]),
  );
});

/** Every file a test opened, closed after it (an unclosed FileHandle warns on GC). */
const opened: FileRangeSource[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((f) => f.close()));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openLayers(stats: ReadStats, cache?: TieredChunkCache): Promise<LayerView[]> {
  const views: LayerView[] = [];
  for (let i = 0; i < layersTar.length; i++) {
    const path = await toEStargz(layersTar[i], `l${i}`);
    const file = await FileRangeSource.open(path);
    opened.push(file);
    const src = new CountingSource(file, stats);
    views.push(await LayerReader.open(src, { cache }));
  }
  return views;
}

describe("ImageFS over eStargz layers", () => {
  it("merges layers top-down with whiteouts and opaque directories", async () => {
    const fs = new ImageFS(await openLayers(new ReadStats()));
    const names = [...fs.walk()]
      .map((m) => m.node.path)
      .filter((p) => p !== "")
      .sort();
    expect(names).toEqual([
      "etc",
      "etc/passwd",
      "opt",
      "opt/app",
      "opt/app/c",
      "usr",
      "usr/link",
      "var",
      "var/hl",
    ]);
    expect(Buffer.from(await fs.read("etc/passwd")).toString()).toBe("root:x:0:0\n");
    expect(Buffer.from(await fs.read("opt/app/c")).toString()).toBe("c");
    // var/x was whited out in layer 2, but the hardlink of layer 1 keeps its content.
    expect(Buffer.from(await fs.read("var/hl")).toString()).toBe("x2");
    expect(fs.lookup("usr/link")?.node.linkName).toBe("../etc/passwd");
    expect(fs.lookup("etc/old")).toBeUndefined();
    expect(fs.lookup("opt/app/a")).toBeUndefined();
    expect(fs.readdir("opt/app").map((m) => m.node.path)).toEqual(["opt/app/c"]);
    await expect(fs.read("nope")).rejects.toThrow(/no such file/);
  });

  it("serves repeated reads from the cache and counts requests and bytes", async () => {
    const stats = new ReadStats();
    const cacheDir = join(dir, "cache");
    const cache = new TieredChunkCache(new MemoryChunkCache(), new DiskChunkCache(cacheDir), stats);
    const fs = new ImageFS(await openLayers(stats, cache));
    await fs.read("etc/passwd");
    const afterFirst = { ...stats.toJSON() };
    expect(afterFirst.requests).toBeGreaterThan(0);
    expect(afterFirst.bytesFetched).toBeGreaterThan(0);
    await fs.read("etc/passwd");
    expect(stats.requests).toBe(afterFirst.requests);
    expect(stats.bytesServedFromCache).toBe(11);
    // A second process (fresh memory) finds the chunk on disk, once the writes behind are done.
    await cache.flush();
    const stats2 = new ReadStats();
    const fs2 = new ImageFS(
      await openLayers(
        stats2,
        new TieredChunkCache(new MemoryChunkCache(), new DiskChunkCache(cacheDir), stats2),
      ),
    );
    await fs2.read("etc/passwd");
    expect(stats2.bytesServedFromCache).toBe(11);
  });

  it("treats a damaged disk cache entry as a miss, never serving its bytes", async () => {
    const cacheDir = join(dir, "cache2");
    const stats = new ReadStats();
    const disk = new DiskChunkCache(cacheDir);
    const fs = new ImageFS(
      await openLayers(stats, new TieredChunkCache(new MemoryChunkCache(), disk, stats)),
    );
    await fs.read("etc/passwd");
    await disk.flush(); // the disk cache writes behind
    const shard = join(cacheDir, "chunks", "sha256");
    for (const sub of await readdir(shard)) {
      for (const f of await readdir(join(shard, sub))) await writeFile(join(shard, sub, f), "evil");
    }
    const stats2 = new ReadStats();
    const fs2 = new ImageFS(
      await openLayers(
        stats2,
        new TieredChunkCache(new MemoryChunkCache(), new DiskChunkCache(cacheDir), stats2),
      ),
    );
    expect(Buffer.from(await fs2.read("etc/passwd")).toString()).toBe("root:x:0:0\n");
    expect(stats2.bytesServedFromCache).toBe(0);
  });
});

describe("WholeLayer (a layer that is not eStargz)", () => {
  it("streams a plain tar.gz once and serves its files", async () => {
    const gz = gzipSync(layersTar[0]);
    const p = join(dir, "plain.tar.gz");
    await writeFile(p, gz);
    const layer = await WholeLayer.load(createReadStream(p));
    try {
      expect(Buffer.from(await layer.read("opt/app/a", 10, 5)).toString()).toBe("aaaaa");
      const chunks: Buffer[] = [];
      for await (const c of layer.stream("etc/passwd")) chunks.push(Buffer.from(c));
      expect(Buffer.concat(chunks).toString()).toBe("root:x:0:0\n");
      expect(layer.lookup("opt/app/sub/b")?.digest).toMatch(/^sha256:/);
    } finally {
      await layer.close();
    }
  });

  it("rejects a blob whose digest does not match", async () => {
    const p = join(dir, "plain2.tar.gz");
    await writeFile(p, gzipSync(layersTar[1]));
    await expect(WholeLayer.load(createReadStream(p), `sha256:${"0".repeat(64)}`)).rejects.toThrow(
      /digest/,
    );
    expect((await readFile(p)).length).toBeGreaterThan(0);
  });
});
