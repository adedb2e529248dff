import { createHash } from "node:crypto";
import { constants, gzipSync } from "node:zlib";
import {
  buildGzipIndex,
  checkpointBefore,
  FormatError,
  GzipCheckpointer,
  type GzipIndex,
  inflateFrom,
  inflateSpan,
  parseGzipIndex,
  resumeStart,
  serializeGzipIndex,
  spanFor,
  VerificationError,
} from "@seekable/format";
import { makeTar, pseudoRandom } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function* pieces(b: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/** Text-like bytes with repeats (long matches across blocks) and incompressible stretches. */
function mixed(n: number, seed: number): Buffer {
  const words = ["import", "def ", "return", "self.", "\n    ", "class ", "None", "(x, y)"];
  const out = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  let p = 0;
  while (p < n) {
    const r = rnd();
    if (r < 0.05) {
      const noise = pseudoRandom(Math.floor(rnd() * 3000), s);
      p += noise.copy(out, p);
    } else if (r < 0.15 && p > 40000) {
      const from = p - 1 - Math.floor(rnd() * 32000);
      const len = Math.min(n - p, 3 + Math.floor(rnd() * 250));
      out.copy(out, p, from, from + len);
      p += len;
    } else p += out.write(words[Math.floor(rnd() * words.length)], p);
  }
  return out;
}

/** Every checkpoint resumes to exactly the bytes up to the next one. */
function checkAllResumes(gz: Buffer, plain: Buffer, cps: GzipCheckpointer): Set<number> {
  const bits = new Set<number>();
  for (let i = 0; i < cps.checkpoints.length; i++) {
    const cp = cps.checkpoints[i];
    const next = cps.checkpoints[i + 1];
    const want = (next ? next.out : plain.length) - cp.out;
    const span = gz.subarray(resumeStart(cp), next ? next.in : gz.length);
    const got = inflateFrom(cp, cp.window, span, 0, want);
    expect(got.length).toBe(want);
    expect(Buffer.compare(got, plain.subarray(cp.out, cp.out + want))).toBe(0);
    bits.add(cp.bits);
  }
  return bits;
}

async function checkpointed(gz: Buffer, spanSize: number, chunk?: number) {
  const cps = new GzipCheckpointer({ spanSize });
  const outs: Buffer[] = [];
  for await (const v of cps.inflate(pieces(gz, chunk))) outs.push(Buffer.from(v));
  return { cps, plain: Buffer.concat(outs) };
}

describe("gzip checkpoints", () => {
  it("resume at checkpoints of every bit offset 0-7 gives the stream's bytes (property)", async () => {
    const seen = new Set<number>();
    const levels = [0, 1, 6, 9];
    const strategies = [
      constants.Z_DEFAULT_STRATEGY,
      constants.Z_FIXED,
      constants.Z_HUFFMAN_ONLY,
      constants.Z_FILTERED,
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 300_000, max: 1_500_000 }),
        fc.constantFrom(...levels),
        fc.constantFrom(...strategies),
        fc.constantFrom(4096, 65536, 1 << 20),
        async (seed, n, level, strategy, chunk) => {
          const plain = mixed(n, seed);
          const gz = gzipSync(plain, { level, strategy, memLevel: 1 + (seed % 9) });
          const r = await checkpointed(gz, 64 * 1024, chunk);
          expect(r.plain.equals(plain)).toBe(true);
          expect(r.cps.uncompressedSize).toBe(plain.length);
          expect(r.cps.compressedSize).toBe(gz.length);
          for (const b of checkAllResumes(gz, plain, r.cps)) seen.add(b);
        },
      ),
      { numRuns: 40, seed: 17 },
    );
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("takes checkpoints about every span of compressed input", async () => {
    const plain = mixed(3_000_000, 5);
    const gz = gzipSync(plain);
    const { cps } = await checkpointed(gz, 128 * 1024);
    const gaps = cps.checkpoints.slice(1).map((c, i) => c.in - cps.checkpoints[i].in);
    expect(cps.checkpoints.length).toBeGreaterThan(gz.length / (256 * 1024));
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(128 * 1024);
    for (const c of cps.checkpoints) expect(c.window.length).toBe(Math.min(c.out, 32 * 1024));
    // Each input-end mark holds: its `in` bytes inflate (from the checkpoint before) to `out`.
    expect(cps.marks.length).toBeGreaterThan(plain.length / (128 * 1024));
    for (const [mIn, mOut] of cps.marks) {
      const cp = cps.checkpoints[checkpointBefore(cps.checkpoints, mOut - 1)];
      const got = inflateFrom(cp, cp.window, gz.subarray(resumeStart(cp), mIn), 0, mOut - cp.out);
      expect(got.length).toBe(mOut - cp.out);
      expect(Buffer.compare(got, plain.subarray(cp.out, mOut))).toBe(0);
    }
  });

  it("takes checkpoints in incompressible data too (stored blocks, read alike from several bit offsets)", async () => {
    const plain = Buffer.concat([mixed(200_000, 3), pseudoRandom(3_000_000, 8), mixed(200_000, 4)]);
    for (const level of [0, 6]) {
      const gz = gzipSync(plain, { level });
      const { cps } = await checkpointed(gz, 64 * 1024);
      const gaps = cps.checkpoints.slice(1).map((c, i) => c.in - cps.checkpoints[i].in);
      expect(Math.max(...gaps), `level ${level}`).toBeLessThan(256 * 1024);
      checkAllResumes(gz, plain, cps);
    }
  });

  it("bounds the uncompressed distance between checkpoints of very compressible data", async () => {
    const plain = Buffer.alloc(40 << 20, 7);
    const gz = gzipSync(plain);
    const { cps } = await checkpointed(gz, 64 * 1024);
    const gaps = cps.checkpoints.slice(1).map((c, i) => c.out - cps.checkpoints[i].out);
    // A deflate block of zeros holds up to ~8 MiB (zlib's symbol buffer): the bound is the
    // uncompressed span (8 compressed spans) plus one block, not the compressed span alone.
    expect(cps.checkpoints.length).toBeGreaterThan(4);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(8 * 64 * 1024 + 8.5 * 1024 * 1024);
    checkAllResumes(gz, plain, cps);
  });

  it("refuses truncated, corrupted and multi-member gzip with a FormatError", async () => {
    const plain = mixed(500_000, 9);
    const gz = gzipSync(plain);
    const run = async (b: Buffer) => {
      for await (const _ of new GzipCheckpointer({ spanSize: 65536 }).inflate(pieces(b))) {
        // drain
      }
    };
    await expect(run(gz.subarray(0, gz.length - 3))).rejects.toThrow(/truncated gzip/);
    await expect(run(gz.subarray(0, gz.length >> 1))).rejects.toThrow(/truncated gzip/);
    const crc = Buffer.from(gz);
    crc[crc.length - 6] ^= 1;
    await expect(run(crc)).rejects.toThrow(/CRC mismatch/);
    await expect(run(Buffer.concat([gz, gzipSync(Buffer.from("x"))]))).rejects.toThrow(
      /multi-member/,
    );
    const flip = Buffer.from(gz);
    flip[1000] ^= 0xff;
    await expect(run(flip)).rejects.toBeInstanceOf(FormatError);
    await expect(run(Buffer.from("not gzip at all"))).rejects.toThrow(/not gzip/);
  });
});

type Layer = { tar: Buffer; gz: Buffer; files: Map<string, Buffer> };
let made: Promise<Layer> | undefined;
const layer = (): Promise<Layer> => {
  made ??= makeLayer();
  return made;
};

async function makeLayer(): Promise<Layer> {
  const files = new Map<string, Buffer>();
  const items: Parameters<typeof makeTar>[0] = [{ name: "usr/" }, { name: "usr/lib/" }];
  for (let i = 0; i < 120; i++) {
    const body =
      i % 10 === 0 ? pseudoRandom(20_000 + i * 3000, i) : mixed(1000 + ((i * 7919) % 90_000), i);
    files.set(`usr/lib/f${i}.py`, body);
    items.push({ name: `usr/lib/f${i}.py`, body, mode: 0o644, uid: i, gid: 7 });
  }
  const big = mixed(9_000_000, 77); // three 4 MiB chunks
  files.set("usr/lib/big.so", big);
  items.push({ name: "usr/lib/big.so", body: big, mode: 0o755 });
  items.push({ name: "usr/lib/empty", body: "" });
  items.push({ name: "usr/bin/", mode: 0o755 });
  items.push({ name: "usr/bin/py", type: "symlink", linkname: "../lib/f1.py" });
  items.push({ name: "usr/bin/hard", type: "link", linkname: "usr/lib/f2.py" });
  const tar = await makeTar(items);
  return { tar, gz: gzipSync(tar, { level: 6 }), files };
}

/** A file's bytes through the index: each chunk's span fetched, inflated, verified. */
function readThrough(ix: GzipIndex, gz: Buffer, name: string): Buffer {
  const toc = JSON.parse(Buffer.from(ix.toc).toString("utf8")) as {
    entries: {
      name: string;
      type: string;
      offset?: number;
      chunkSize?: number;
      chunkDigest?: string;
    }[];
  };
  const parts: Buffer[] = [];
  for (const e of toc.entries) {
    if (e.name !== name || (e.type !== "reg" && e.type !== "chunk") || !e.chunkSize) continue;
    const span = spanFor(ix, e.offset as number, e.chunkSize);
    const data = inflateSpan(
      ix,
      span,
      gz.subarray(span.start, span.end),
      e.offset as number,
      e.chunkSize,
    );
    expect(sha(data)).toBe(e.chunkDigest);
    parts.push(Buffer.from(data));
  }
  return Buffer.concat(parts);
}

describe("gzip layer index", () => {
  it("indexes a tar.gz: every file read through its checkpoints equals the original", async () => {
    const { tar, gz, files } = await layer();
    const ix = await buildGzipIndex(pieces(gz), {
      spanSize: 128 * 1024,
      digest: sha(gz),
      size: gz.length,
    });
    expect(ix.layer).toEqual({ digest: sha(gz), size: gz.length });
    expect(ix.uncompressedSize).toBe(tar.length);
    expect(ix.checkpoints.length).toBeGreaterThan(10);
    const back = parseGzipIndex(serializeGzipIndex(ix));
    expect(back.checkpoints.map(({ in: i, bits, out }) => [i, bits, out])).toEqual(
      ix.checkpoints.map(({ in: i, bits, out }) => [i, bits, out]),
    );
    expect(Buffer.from(back.toc).equals(Buffer.from(ix.toc))).toBe(true);
    for (const [name, body] of files) {
      const got = readThrough(back, gz, name);
      expect(sha(got), name).toBe(sha(body));
    }
    const toc = JSON.parse(Buffer.from(ix.toc).toString("utf8"));
    const big = toc.entries.filter((e: { name: string }) => e.name === "usr/lib/big.so");
    expect(big.map((e: { type: string }) => e.type)).toEqual(["reg", "chunk", "chunk"]);
    expect(big[0].digest).toBe(sha(files.get("usr/lib/big.so") as Buffer));
    const f3 = toc.entries.find((e: { name: string }) => e.name === "usr/lib/f3.py");
    expect(f3).toMatchObject({ mode: 0o644, uid: 3, gid: 7, type: "reg" });
    expect(
      tar.subarray(f3.offset, f3.offset + f3.size).equals(files.get("usr/lib/f3.py") as Buffer),
    ).toBe(true);
    const link = toc.entries.find((e: { name: string }) => e.name === "usr/bin/py");
    expect(link).toMatchObject({ type: "symlink", linkName: "../lib/f1.py" });
  });

  it("is deterministic and small", async () => {
    const { gz } = await layer();
    const a = serializeGzipIndex(await buildGzipIndex(pieces(gz, 4096)));
    const b = serializeGzipIndex(await buildGzipIndex(pieces(gz, 1 << 20)));
    expect(a.equals(b)).toBe(true);
    expect(a.length).toBeLessThan(gz.length * 0.02);
  });

  it("fails when the layer's bytes do not match its digest or size", async () => {
    const { gz } = await layer();
    await expect(
      buildGzipIndex(pieces(gz), { digest: sha(Buffer.from("other")) }),
    ).rejects.toBeInstanceOf(VerificationError);
    await expect(buildGzipIndex(pieces(gz), { size: gz.length + 1 })).rejects.toBeInstanceOf(
      VerificationError,
    );
  });

  it("a corrupt span gives wrong bytes that the chunk digest catches, or a FormatError", async () => {
    const { gz, files } = await layer();
    const ix = await buildGzipIndex(pieces(gz), { spanSize: 128 * 1024 });
    const bad = Buffer.from(gz);
    for (let i = 2000; i < bad.length; i += 5000) bad[i] ^= 0x55;
    let caught = 0;
    for (const name of files.keys()) {
      try {
        readThrough(ix, bad, name);
      } catch (e) {
        caught++;
        expect(e instanceof FormatError || (e as Error).name === "AssertionError").toBe(true);
      }
    }
    expect(caught).toBe(files.size);
  });
});

describe("gzip index parsing (hostile input)", () => {
  const small = async () => {
    const { gz } = await layer();
    return buildGzipIndex(pieces(gz), { spanSize: 128 * 1024 });
  };

  it("refuses checkpoints out of order, past the layer, bad bit offsets, cut windows", async () => {
    const ix = await small();
    const variants: [string, (x: GzipIndex) => GzipIndex, RegExp][] = [
      [
        "order",
        (x) => ({ ...x, checkpoints: [x.checkpoints[0], x.checkpoints[2], x.checkpoints[1]] }),
        /out of order/,
      ],
      [
        "past",
        (x) => ({ ...x, layer: { ...x.layer, size: x.checkpoints[3].in - 1 } }),
        /past the end/,
      ],
      [
        "bits",
        (x) => ({
          ...x,
          checkpoints: x.checkpoints.map((c, i) => (i === 2 ? { ...c, bits: 9 } : c)),
        }),
        /bit offset/,
      ],
      [
        "window",
        (x) => ({
          ...x,
          checkpoints: x.checkpoints.map((c, i) =>
            i === 2 ? { ...c, window: c.window.subarray(1) } : c,
          ),
        }),
        /window|bytes after/,
      ],
      ["first", (x) => ({ ...x, checkpoints: x.checkpoints.slice(1) }), /first checkpoint/],
      ["out", (x) => ({ ...x, uncompressedSize: 10 }), /past the uncompressed/],
    ];
    for (const [what, change, re] of variants) {
      expect(() => parseGzipIndex(serializeGzipIndex(change(ix))), what).toThrow(re);
    }
    expect(() => parseGzipIndex(gzipSync(Buffer.alloc(300 << 20)))).toThrow(
      /larger than the limit/,
    );
    expect(() => parseGzipIndex(Buffer.from("junk"))).toThrow(FormatError);
  });

  it("any mutation of a serialized index parses or is one FormatError (property)", async () => {
    const ix = await small();
    const raw = (await import("node:zlib")).gunzipSync(serializeGzipIndex(ix));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(raw.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        fc.nat(raw.length),
        (edits, cut) => {
          const b = Buffer.from(raw.subarray(0, Math.max(cut, 1)));
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          try {
            const p = parseGzipIndex(gzipSync(b));
            for (const c of p.checkpoints) expect(c.in).toBeLessThanOrEqual(p.layer.size);
          } catch (e) {
            expect(e).toBeInstanceOf(FormatError);
          }
        },
      ),
      // ~30 ms a run (gzip, parse, windows inflated): 100 keep the fast loop fast.
      { numRuns: 100 },
    );
  });
});
