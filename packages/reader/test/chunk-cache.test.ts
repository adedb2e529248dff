import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DiskChunkCache } from "@seekable/reader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The disk cache without a chunk size (reads through the layer reader, e.g. a mount): the
// same distrust as with one, and a file past 64 MiB is never read. (The CLI test
// test/cache-hostile.test.ts covers the sized path under a memory cap and a deadline.)
let dir: string;
const data = Buffer.from("a verified chunk\n".repeat(100));
const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seekable-disk-cache-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function plant(name: string, make: (p: string) => Promise<unknown>) {
  const cache = new DiskChunkCache(join(dir, name));
  const hex = digest.slice("sha256:".length);
  const p = join(dir, name, "chunks", "sha256", hex.slice(0, 2), hex);
  await mkdir(join(p, ".."), { recursive: true });
  await make(p);
  return { cache, p };
}

describe("DiskChunkCache.get without a size", () => {
  it("is a miss for a FIFO, a symlink, a directory and a file past 64 MiB; put replaces them", async () => {
    const cases: [string, (p: string) => Promise<unknown>][] = [
      ["fifo", (p) => promisify(execFile)("mkfifo", [p])],
      ["devzero", (p) => symlink("/dev/zero", p)],
      ["dir", (p) => mkdir(join(p, "x"), { recursive: true })],
      [
        "huge",
        async (p) => {
          await writeFile(p, data);
          await truncate(p, (64 << 20) + 1);
        },
      ],
    ];
    for (const [name, make] of cases) {
      const { cache, p } = await plant(name, make);
      expect(await cache.get(digest), name).toBeUndefined();
      cache.put(digest, data);
      await cache.flush();
      expect((await lstat(p)).isFile(), name).toBe(true);
      expect(Buffer.from((await cache.get(digest)) as Uint8Array).equals(data), name).toBe(true);
      expect((await readFile(p)).equals(data)).toBe(true);
    }
  });

  it("with a size, a file of another size is a miss even when its bytes would match", async () => {
    const { cache } = await plant("sized", (p) => writeFile(p, data));
    expect(await cache.get(digest, data.length + 1)).toBeUndefined();
    expect(await cache.get(digest, -1)).toBeUndefined();
    expect(Buffer.from((await cache.get(digest, data.length)) as Uint8Array).equals(data)).toBe(
      true,
    );
  });
});

describe("DiskChunkCache writes behind", () => {
  const chunk = (i: number) => {
    const d = Buffer.alloc(1000, i);
    return { d, digest: `sha256:${createHash("sha256").update(d).digest("hex")}` };
  };

  it("put returns before the file exists; the chunk is a hit meanwhile; flush writes it", async () => {
    const cache = new DiskChunkCache(join(dir, "behind"));
    const { d, digest: dg } = chunk(1);
    const hex = dg.slice("sha256:".length);
    const p = join(dir, "behind", "chunks", "sha256", hex.slice(0, 2), hex);
    cache.put(dg, d);
    await expect(lstat(p)).rejects.toThrow(/ENOENT/);
    expect(Buffer.from((await cache.get(dg, d.length)) as Uint8Array).equals(d)).toBe(true);
    expect(await cache.get(dg, d.length + 1)).toBeUndefined();
    await cache.flush();
    expect((await readFile(p)).equals(d)).toBe(true);
    // A fresh cache over the same directory reads it from disk.
    const again = new DiskChunkCache(join(dir, "behind"));
    expect(Buffer.from((await again.get(dg, d.length)) as Uint8Array).equals(d)).toBe(true);
  });

  it("holds at most maxPendingBytes in memory: a put beyond it is left out", async () => {
    const cache = new DiskChunkCache(join(dir, "bounded"), { maxPendingBytes: 2500, writers: 1 });
    const chunks = [1, 2, 3, 4].map(chunk);
    for (const c of chunks) cache.put(c.digest, c.d);
    await cache.flush();
    const fresh = new DiskChunkCache(join(dir, "bounded"));
    const hits = await Promise.all(chunks.map((c) => fresh.get(c.digest, c.d.length)));
    expect(hits.map((h) => h !== undefined)).toEqual([true, true, false, false]);
  });

  it("a directory removed under it is made again", async () => {
    const cache = new DiskChunkCache(join(dir, "removed"));
    const a = chunk(5);
    cache.put(a.digest, a.d);
    await cache.flush();
    await rm(join(dir, "removed"), { recursive: true, force: true });
    const b = chunk(6);
    cache.put(b.digest, b.d);
    cache.put(a.digest, a.d);
    await cache.flush();
    const fresh = new DiskChunkCache(join(dir, "removed"));
    expect(await fresh.get(a.digest, a.d.length)).toBeDefined();
    expect(await fresh.get(b.digest, b.d.length)).toBeDefined();
  });
});

describe("sessionCache", () => {
  it("private: chunks go to a directory of the run's own, a hit there, removed at close", async () => {
    const { existsSync } = await import("node:fs");
    const { ReadStats } = await import("../src/stats.js");
    const { DiskChunkCache, sessionCache } = await import("../src/chunk-cache.js");
    const cache = sessionCache("private", new ReadStats());
    const data = new Uint8Array(1000).fill(3);
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    cache.put(digest, data);
    await cache.flush();
    const dir = cache.diskDir as string;
    expect(dir).toMatch(/seekable-run-/);
    const onDisk = await new DiskChunkCache(dir).get(digest, 1000);
    expect(Buffer.from(onDisk as Uint8Array).equals(Buffer.from(data))).toBe(true);
    await cache.close();
    expect(existsSync(dir)).toBe(false);
  });
});
