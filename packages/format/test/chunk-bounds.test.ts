// Chunk reading against hostile members: a chunk never inflates much past its TOC entry, large
// inflates leave the event loop free, verify reads every member itself, and a member cut
// short by another entry's offset names that entry.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  BufferRangeSource,
  type ChunkCache,
  convertLayer,
  emptyHeader,
  encodeHeader,
  FormatError,
  gzipMember,
  LayerReader,
  padding,
  toByteString,
  VerificationError,
} from "@seekable/format";
import { entryOf, rewriteBlob, zeroBombMember } from "@seekable/test-kit/hostile.js";
import { describe, expect, it } from "vitest";

const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Compressible but not trivial bytes (hex of a sha256 chain): inflates at a real rate. */
function text(seed: number, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, n = 0; n < size; i++, n += 64)
    parts.push(Buffer.from(createHash("sha256").update(`${seed}/${i}`).digest("hex")));
  return Buffer.concat(parts).subarray(0, size);
}

function tarOf(files: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of files) {
    const h = emptyHeader(toByteString(name), "0");
    h.size = data.length;
    h.mode = 0o644;
    parts.push(encodeHeader(h), data, Buffer.alloc(padding(data.length)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A valid eStargz written by the real writer. */
async function estargz(files: [string, Buffer][], chunkSize?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  await convertLayer(
    { open: () => Readable.from([tarOf(files)]) },
    { write: async (d) => void out.push(Buffer.from(d)) },
    { threads: 1, ...(chunkSize ? { chunkSize } : {}) },
  );
  return Buffer.concat(out);
}

const HELLO = Buffer.from("hello\n");

describe("a member that inflates far past its TOC entry", () => {
  it("fails on the digest in well under a second, without inflating the rest", async () => {
    const valid = await estargz([["a", text(1, 1000)]]);
    const bomb = await zeroBombMember(1024 ** 3);
    const blob = await rewriteBlob(valid, ({ toc, append }) => {
      toc.entries.push({
        name: "bomb",
        type: "reg",
        size: HELLO.length,
        offset: append(bomb),
        digest: sha(HELLO),
        chunkDigest: sha(HELLO),
      });
    });
    const r = await LayerReader.open(new BufferRangeSource(blob));
    const rss0 = process.resourceUsage().maxRSS;
    const err = await r.read("bomb").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as Error).message).toMatch(/^bomb: chunk at file offset 0 does not match/);
    // maxRSS is in KiB: the 1 GiB of zeros was never made.
    expect(process.resourceUsage().maxRSS - rss0).toBeLessThan(64 * 1024);
  });

  it("a valid chunk followed by a bomb in the same member reads right, quickly", async () => {
    // The member a chunk lives in also holds what follows it in the tar stream; only the
    // chunk's bytes matter (the reference reads just those too).
    const valid = await estargz([["a", text(1, 1000)]]);
    const zeros = await zeroBombMember(1024 ** 3);
    const blob = await rewriteBlob(valid, ({ toc, append }) => {
      // HELLO as a stored block ahead of the zeros' deflate blocks, one deflate stream.
      const stored = Buffer.concat([
        Buffer.from([0x00, HELLO.length, 0x00, ~HELLO.length & 0xff, 0xff]),
        HELLO,
      ]);
      const member = Buffer.concat([zeros.subarray(0, 10), stored, zeros.subarray(10)]);
      toc.entries.push({
        name: "hello",
        type: "reg",
        size: HELLO.length,
        offset: append(member),
        digest: sha(HELLO),
        chunkDigest: sha(HELLO),
      });
    });
    const r = await LayerReader.open(new BufferRangeSource(blob));
    const rss0 = process.resourceUsage().maxRSS;
    expect(Buffer.from(await r.read("hello"))).toEqual(HELLO);
    // maxRSS is in KiB: the zeros after the chunk were never inflated into memory.
    expect(process.resourceUsage().maxRSS - rss0).toBeLessThan(64 * 1024);
  });

  it("a member holding much more than a small chunk (padding, headers) still reads", async () => {
    const small = text(2, 100);
    const valid = await estargz([["a", text(1, 1000)]]);
    const blob = await rewriteBlob(valid, ({ toc, append }) => {
      // 1 MiB of following headers in the chunk's member: past the in-place inflate limit.
      const member = gzipMember(Buffer.concat([small, text(3, 1 << 20)]), 6);
      toc.entries.push({
        name: "small",
        type: "reg",
        size: small.length,
        offset: append(member),
        digest: sha(small),
        chunkDigest: sha(small),
      });
    });
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(Buffer.from(await r.read("small"))).toEqual(small);
    await expect(r.verify()).resolves.toBeDefined();
  });
});

describe("large chunks inflate off the event loop", () => {
  it("timers keep firing while a 16 MiB chunk is inflated", async () => {
    const big = text(4, 16 << 20);
    const r = await LayerReader.open(
      new BufferRangeSource(await estargz([["big", big]], 32 << 20)),
    );
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const got = await r.read("big");
      expect(Buffer.from(got).equals(big)).toBe(true);
    } finally {
      clearInterval(timer);
    }
    // A synchronous inflate of the whole chunk lets no timer run until it is done.
    expect(ticks).toBeGreaterThanOrEqual(2);
  });
});

class MapCache implements ChunkCache {
  readonly map = new Map<string, Uint8Array>();
  get(d: string) {
    return this.map.get(d);
  }
  put(d: string, data: Uint8Array) {
    this.map.set(d, data);
  }
}

describe("verify", () => {
  it("reads the member of every file, even when its chunk digest is cached", async () => {
    const same = text(5, 5000);
    const valid = await estargz([
      ["one", same],
      ["two", same],
    ]);
    const blob = await rewriteBlob(valid, ({ toc, payload }) => {
      const off = entryOf(toc, "two").offset as number;
      for (let i = 12; i < 20; i++) payload[off + i] ^= 0x55;
    });
    const cache = new MapCache();
    const r = await LayerReader.open(new BufferRangeSource(blob), { cache });
    expect(Buffer.from(await r.read("one"))).toEqual(same);
    expect(cache.map.size).toBe(1);
    const err = await r.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/^two: /);
  });
});

describe("an offset into the middle of another member", () => {
  it("names the entry whose offset is wrong, not the one whose member it cuts", async () => {
    const valid = await estargz([
      ["a", text(6, 50_000)],
      ["b", text(7, 100)],
    ]);
    const blob = await rewriteBlob(valid, ({ toc }) => {
      entryOf(toc, "b").offset = (entryOf(toc, "a").offset as number) + 40;
    });
    const r = await LayerReader.open(new BufferRangeSource(blob));
    for (const read of [() => r.read("a"), () => r.read("b"), () => r.verify()]) {
      const err = await read().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/^b: /);
    }
  });
});
