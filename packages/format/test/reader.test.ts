import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { constants, crc32, deflateRawSync } from "node:zlib";
import {
  BufferRangeSource,
  type ByteRange,
  convertLayer,
  emptyHeader,
  encodeFooter,
  encodeHeader,
  FormatError,
  gzipMember,
  LayerReader,
  padding,
  type RangeSource,
  serializeToc,
  type TocEntry,
  toByteString,
  VerificationError,
} from "@seekable/format";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function rand(seed: number, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i * 32 < size; i++)
    parts.push(createHash("sha256").update(`${seed}/${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

const hdr = (name: string, size: number): Buffer => {
  const h = emptyHeader(toByteString(name), "0");
  h.size = size;
  h.mode = 0o644;
  return encodeHeader(h);
};
const pad = (n: number) => Buffer.alloc(padding(n));

function tocTar(json: Buffer): Buffer {
  return Buffer.concat([
    hdr("stargz.index.json", json.length),
    json,
    pad(json.length),
    Buffer.alloc(1024),
  ]);
}

/** crfs wrote the TOC member with gzip Extra "stargz.toc" and a 47-byte footer. */
function crfsTocMember(data: Buffer): Buffer {
  const extra = Buffer.from("stargz.toc");
  const head = Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  const body = deflateRawSync(data, { finishFlush: constants.Z_FINISH });
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(crc32(data) >>> 0, 0);
  tail.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, extra, body, tail]);
}

function legacyFooter(off: number): Buffer {
  const b = Buffer.alloc(47);
  b.set([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff], 0);
  b.writeUInt16LE(22, 10);
  b.write(`${off.toString(16).padStart(16, "0")}STARGZ`, 12, "latin1");
  b.set([0x01, 0x00, 0x00, 0xff, 0xff], 34);
  return b;
}

/** Compresses members, lets `toc` place entries at the member offsets, appends TOC + footer. */
function buildBlob(
  members: Buffer[],
  toc: (off: number[]) => unknown,
  legacy = false,
): { blob: Buffer; tocJson: Buffer } {
  const gz = members.map((m) => gzipMember(m, 6));
  const off: number[] = [];
  let p = 0;
  for (const g of gz) {
    off.push(p);
    p += g.length;
  }
  const t = toc(off);
  const tocJson = legacy
    ? Buffer.from(JSON.stringify(t))
    : serializeToc(t as Parameters<typeof serializeToc>[0]);
  const member = legacy ? crfsTocMember(tocTar(tocJson)) : gzipMember(tocTar(tocJson), 6);
  const blob = Buffer.concat([...gz, member, legacy ? legacyFooter(p) : encodeFooter(p)]);
  return { blob, tocJson };
}

class CountingSource implements RangeSource {
  readonly size: number;
  calls: ByteRange[][] = [];
  constructor(private readonly data: Buffer) {
    this.size = data.length;
  }
  async read(ranges: ByteRange[]): Promise<Uint8Array[]> {
    this.calls.push(ranges);
    return ranges.map((r) => this.data.subarray(r.offset, r.offset + r.length));
  }
}

describe("legacy stargz (crfs) blobs", () => {
  const A = rand(1, 1500);
  const members = [
    hdr("a", 1500),
    A.subarray(0, 1000),
    Buffer.concat([A.subarray(1000), pad(1500)]),
  ];
  const toc = (digest: string) => (off: number[]) => ({
    version: 1,
    entries: [
      { name: "a", type: "reg", size: 1500, offset: off[1], digest, chunkSize: 1000, NumLink: 0 },
      { name: "a", type: "chunk", offset: off[2], chunkOffset: 1000, chunkSize: 500, NumLink: 0 },
    ],
  });

  it("are read through the 47-byte footer; files are checked against their digest", async () => {
    const { blob, tocJson } = buildBlob(members, toc(sha(A)), true);
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(r.legacy).toBe(true);
    expect(Buffer.from(r.tocBytes)).toEqual(tocJson);
    expect(Buffer.from(await r.read("a"))).toEqual(A);
    expect(Buffer.from(await r.read("a", 1200, 100))).toEqual(A.subarray(1200, 1300));
    expect((await r.verify()).files).toBe(1);
  });

  it("a wrong file digest fails before any byte is returned", async () => {
    const { blob } = buildBlob(members, toc(sha(Buffer.from("other"))), true);
    const r = await LayerReader.open(new BufferRangeSource(blob));
    await expect(r.read("a", 0, 10)).rejects.toBeInstanceOf(VerificationError);
    const got: Uint8Array[] = [];
    await expect(
      (async () => {
        for await (const c of r.stream("a")) got.push(c);
      })(),
    ).rejects.toBeInstanceOf(VerificationError);
    expect(got).toEqual([]);
    await expect(r.verify()).rejects.toBeInstanceOf(VerificationError);
  });
});

describe("blobs with several payloads in one member (MinChunkSize, innerOffset)", () => {
  it("reads each file from its inner offset", async () => {
    const A = rand(2, 10);
    const B = rand(3, 20);
    const C = rand(4, 700);
    const m1 = Buffer.concat([A, pad(10), hdr("b", 20), B, pad(20), hdr("c", 700)]);
    const m2 = Buffer.concat([C, pad(700)]);
    const { blob } = buildBlob([hdr("a", 10), m1, m2], (off) => ({
      version: 1,
      entries: [
        { name: "a", type: "reg", size: 10, offset: off[1], digest: sha(A), chunkDigest: sha(A) },
        {
          name: "b",
          type: "reg",
          size: 20,
          offset: off[1],
          innerOffset: 1024,
          digest: sha(B),
          chunkDigest: sha(B),
        },
        { name: "c", type: "reg", size: 700, offset: off[2], digest: sha(C), chunkDigest: sha(C) },
      ] as TocEntry[],
    }));
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(Buffer.from(await r.read("a"))).toEqual(A);
    expect(Buffer.from(await r.read("b"))).toEqual(B);
    expect(Buffer.from(await r.read("b", 5, 7))).toEqual(B.subarray(5, 12));
    expect(Buffer.from(await r.read("c"))).toEqual(C);
    // The reference's VerifyTOC rejects shared offsets; a TS verifier must not.
    expect((await r.verify()).files).toBe(3);
  });
});

describe("opening", () => {
  it("a TOC larger than the tail is fetched with one more read, giving the same bytes", async () => {
    const names = Array.from({ length: 300 }, (_, i) => `dir/file-with-a-long-name-${i}`);
    const tar = await (async () => {
      const parts: Buffer[] = [];
      for (const [i, n] of names.entries()) {
        const data = rand(i, i % 7);
        parts.push(hdr(n, data.length), data, pad(data.length));
      }
      parts.push(Buffer.alloc(1024));
      return Buffer.concat(parts);
    })();
    const chunks: Buffer[] = [];
    const res = await convertLayer(
      { open: () => Readable.from([tar]) },
      { write: async (d) => void chunks.push(Buffer.from(d)) },
      { threads: 1 },
    );
    const blob = Buffer.concat(chunks);
    const big = new CountingSource(blob);
    const r1 = await LayerReader.open(big);
    const small = new CountingSource(blob);
    const r2 = await LayerReader.open(small, { tailSize: 100 });
    expect(big.calls.length).toBe(1);
    expect(small.calls.length).toBe(2);
    expect(Buffer.from(r2.tocBytes)).toEqual(Buffer.from(r1.tocBytes));
    expect(r2.tocDigest).toBe(res.tocDigest);
    await expect(
      LayerReader.open(new BufferRangeSource(blob), { tocDigest: res.tocDigest }),
    ).resolves.toBeDefined();
    await expect(
      LayerReader.open(new BufferRangeSource(blob), { tocDigest: `sha256:${"1".repeat(64)}` }),
    ).rejects.toBeInstanceOf(VerificationError);
    // The TOC member inflated from two pieces (read before the tail, and in it), split
    // anywhere: the same bytes; a corrupt piece or too small a limit is refused as in one.
    const tocLen = blob.length - r1.footer.tocOffset;
    for (const tailSize of [51, 52, 60, 100, 1000, tocLen - 1, tocLen, tocLen + 1]) {
      const r = await LayerReader.open(new BufferRangeSource(blob), { tailSize });
      expect(Buffer.from(r.tocBytes)).toEqual(Buffer.from(r1.tocBytes));
    }
    const corrupt = Buffer.from(blob);
    corrupt[r1.footer.tocOffset + 20] ^= 0xff;
    await expect(
      LayerReader.open(new BufferRangeSource(corrupt), { tailSize: 100 }),
    ).rejects.toBeInstanceOf(FormatError);
    expect(r1.tocBytes.length).toBeGreaterThan(tocLen + 4096); // the limit is met inflating
    await expect(
      LayerReader.open(new BufferRangeSource(blob), { tailSize: 100, maxTocBytes: tocLen }),
    ).rejects.toThrow(/larger than the limit/);
  });

  it("rejects TOCs whose chunks do not tile the file or point outside the payload area", async () => {
    const A = rand(5, 100);
    const bad: ((off: number[]) => TocEntry[])[] = [
      (off) => [
        { name: "a", type: "reg", size: 100, offset: off[1], chunkSize: 50, chunkDigest: sha(A) },
      ],
      (off) => [
        { name: "a", type: "reg", size: 100, offset: off[1], chunkSize: 50, chunkDigest: sha(A) },
        { name: "a", type: "chunk", offset: off[1], chunkOffset: 60, chunkDigest: sha(A) },
      ],
      () => [{ name: "a", type: "reg", size: 100, offset: 0, chunkDigest: sha(A) }],
      () => [{ name: "a", type: "chunk", offset: 5, chunkDigest: sha(A) }],
      (off) => [
        { name: "d", type: "reg", size: 100, offset: off[1], chunkDigest: sha(A) },
        { name: "d/x", type: "dir" },
      ],
      (off) => [
        { name: "h", type: "hardlink", linkName: "missing" },
        { name: "a", type: "reg", size: 100, offset: off[1] },
      ],
    ];
    for (const entries of bad) {
      const { blob } = buildBlob([hdr("a", 100), A], (off) => ({
        version: 1,
        entries: entries(off),
      }));
      await expect(LayerReader.open(new BufferRangeSource(blob))).rejects.toBeInstanceOf(
        FormatError,
      );
    }
  });

  it("never crashes on random bytes or random corruption of a valid blob", async () => {
    const A = rand(6, 3000);
    const { blob } = buildBlob(
      [
        hdr("a", 3000),
        A.subarray(0, 1000),
        A.subarray(1000, 2000),
        Buffer.concat([A.subarray(2000), pad(3000)]),
      ],
      (off) => ({
        version: 1,
        entries: [0, 1, 2].map((k) => ({
          name: "a",
          type: k === 0 ? "reg" : "chunk",
          size: k === 0 ? 3000 : undefined,
          offset: off[k + 1],
          chunkOffset: k * 1000,
          chunkSize: k < 2 ? 1000 : undefined,
          digest: k === 0 ? sha(A) : undefined,
          chunkDigest: sha(A.subarray(k * 1000, (k + 1) * 1000)),
        })) as TocEntry[],
      }),
    );
    expect(
      Buffer.from(await (await LayerReader.open(new BufferRangeSource(blob))).read("a")),
    ).toEqual(A);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: blob.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        async (flips) => {
          const b = Buffer.from(blob);
          for (const [at, mask] of flips) b[at] ^= mask;
          try {
            const r = await LayerReader.open(new BufferRangeSource(b));
            const got = Buffer.from(await r.read("a"));
            // Whatever is returned must be the true content.
            expect(got).toEqual(A);
          } catch (e) {
            // Only FormatError/VerificationError (or a RangeError from the source) are allowed.
            expect(e instanceof FormatError || e instanceof RangeError, String(e)).toBe(true);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("read rejects negative or fractional offsets instead of returning uninitialized bytes", async () => {
    const A = rand(7, 100);
    const { blob } = buildBlob([hdr("a", 100), Buffer.concat([A, pad(100)])], (off) => ({
      version: 1,
      entries: [
        { name: "a", type: "reg", size: 100, offset: off[1], digest: sha(A), chunkDigest: sha(A) },
      ],
    }));
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(Buffer.from(await r.read("a", 90, 50))).toEqual(A.subarray(90));
    expect((await r.read("a", 200, 5)).length).toBe(0);
    // read("a", -5, 10) currently returns 10 bytes whose first 5 come from Buffer.allocUnsafe.
    await expect(r.read("a", -5, 10)).rejects.toThrow(RangeError);
    await expect(r.read("a", 1.5, 3)).rejects.toThrow(RangeError);
  });
});
