// The Compressor/Decompressor seam (estargz's pair): gzip is its one implementation, the
// writer and the layer reader go through it, and the output is the same bytes as before.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  BufferRangeSource,
  type Compressor,
  compressionByName,
  convertLayer,
  type Decompressor,
  encodeFooter,
  gzipCompression,
  gzipMember,
  LayerReader,
  parseFooter,
} from "@seekable/format";
import { describe, expect, it } from "vitest";

function tarOf(files: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of files) {
    const h = Buffer.alloc(512);
    h.write(name, 0, "latin1");
    h.write("0000644\0", 100, "latin1");
    h.write("0000000\0", 108, "latin1");
    h.write("0000000\0", 116, "latin1");
    h.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    h.write("14533113200\0", 136, "latin1");
    h.write("        ", 148, "latin1");
    h.write("0", 156, "latin1");
    h.write("ustar\0", 257, "latin1");
    h.write("00", 263, "latin1");
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function convert(tar: Buffer, compressor?: Compressor) {
  const out: Buffer[] = [];
  const res = await convertLayer(
    { open: () => Readable.from([tar]) },
    { write: async (d) => void out.push(Buffer.from(d)) },
    { threads: 2, chunkSize: 1000, compressor },
  );
  return { res, blob: Buffer.concat(out) };
}

const files: [string, Buffer][] = [
  ["a.txt", Buffer.from("hello\n".repeat(500))],
  ["b.bin", createHash("sha512").update("seed").digest()],
];

describe("compression seam", () => {
  it("gzip is the registered implementation, made of the gzip framing functions", () => {
    expect(compressionByName("gzip")).toBe(gzipCompression);
    const data = Buffer.from("some bytes to frame");
    for (const level of [1, 6, 9]) {
      expect(Buffer.from(gzipCompression.writeMember(data, level))).toEqual(
        gzipMember(data, level),
      );
      expect(Buffer.from(gzipCompression.tocMember(data, level))).toEqual(gzipMember(data, level));
    }
    expect(gzipCompression.footer(1234)).toEqual(encodeFooter(1234));
    expect(gzipCompression.parseFooter(encodeFooter(1234))).toEqual(
      parseFooter(encodeFooter(1234)),
    );
    expect(gzipCompression.footerSize).toBe(51);
    expect(() => compressionByName("zstd" as "gzip")).toThrow(/unknown compression/);
  });

  it("the writer takes the TOC member and footer from its Compressor; gzip output is unchanged", async () => {
    const tar = tarOf(files);
    const plain = await convert(tar);
    const calls: string[] = [];
    const spy: Compressor = {
      ...gzipCompression,
      tocMember(d, l) {
        calls.push("toc");
        return gzipCompression.tocMember(d, l);
      },
      footer(o) {
        calls.push("footer");
        return gzipCompression.footer(o);
      },
    };
    const seam = await convert(tar, spy);
    expect(calls).toEqual(["toc", "footer"]);
    expect(seam.blob.equals(plain.blob)).toBe(true);
    expect(seam.res.digest).toBe(plain.res.digest);
  });

  it("the layer reader parses the footer and inflates chunks through its Decompressor", async () => {
    const { blob } = await convert(tarOf(files));
    const calls = { footer: 0, chunk: 0 };
    const spy: Decompressor = {
      ...gzipCompression,
      parseFooter(t) {
        calls.footer++;
        return gzipCompression.parseFooter(t);
      },
      inflateChunk(c, r, n) {
        calls.chunk++;
        return gzipCompression.inflateChunk(c, r, n);
      },
    };
    const r = await LayerReader.open(new BufferRangeSource(blob), { decompressor: spy });
    expect(r.decompressor).toBe(spy);
    const node = r.lookup("a.txt");
    expect(node).toBeDefined();
    const data = await r.read("a.txt");
    expect(Buffer.from(data).equals(files[0][1])).toBe(true);
    expect(calls.footer).toBe(1);
    expect(calls.chunk).toBeGreaterThanOrEqual(3); // 3000 bytes in chunks of 1000
    const dflt = await LayerReader.open(new BufferRangeSource(blob));
    expect(dflt.decompressor).toBe(gzipCompression);
  });
});
