// The tar input reader (tar-reader.ts through readTarEntries): raw bytes kept, PAX and GNU
// long names applied, bodies streamed across any chunking of the input, and every malformed
// input a FormatError made where it is read.
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import {
  type ByteString,
  emptyHeader,
  encodeHeader,
  FormatError,
  fromByteString,
  padding,
  readTarEntries,
  type TarHeader,
  toByteString,
} from "@seekable/format";
import { describe, expect, it } from "vitest";

const bytes = (s: string) => s as ByteString;

function entry(h: TarHeader, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeHeader(h), body, Buffer.alloc(padding(body.length))]);
}

function file(name: string, body: string | Buffer, edit?: (h: TarHeader) => void): Buffer {
  const data = typeof body === "string" ? Buffer.from(body) : body;
  const h = emptyHeader(toByteString(name), "0");
  h.mode = 0o644;
  h.size = data.length;
  h.mtimeSec = 1_700_000_000;
  edit?.(h);
  return entry(h, data);
}

const END = Buffer.alloc(1024);

/** A stream of `data` cut into pieces of `size` bytes. */
function chunked(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

interface Got {
  name: string;
  type: string;
  size: number;
  body: string;
  header: TarHeader;
}

async function read(src: Readable, skipBodies = false): Promise<Got[]> {
  const out: Got[] = [];
  for await (const e of readTarEntries(src)) {
    const parts: Buffer[] = [];
    if (!skipBodies) for await (const c of e.body) parts.push(Buffer.from(c));
    out.push({
      name: e.header.name,
      type: e.header.type,
      size: e.header.size,
      body: Buffer.concat(parts).toString("latin1"),
      header: e.header,
    });
  }
  return out;
}

async function fails(data: Buffer): Promise<FormatError> {
  try {
    await read(Readable.from([data]));
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error("expected the read to fail");
}

// A tar with every kind of header the reader must handle.
const longName = `${"deep/".repeat(40)}file.txt`;
const nonUtf8 = bytes("bin/\xff\xfe-name");
const tarParts = [
  file("café.txt", "bonjour\n"),
  // GNU: ././@LongLink 'L' for a name over 100 bytes, 'K' for a long link name.
  file(longName, "x".repeat(1000), (h) => {
    h.gnu = true;
  }),
  (() => {
    const h = emptyHeader(toByteString("gnu-link"), "2");
    h.linkname = toByteString(`${"t/".repeat(60)}target`);
    h.gnu = true;
    return entry(h);
  })(),
  // PAX: a binary xattr value, a non-UTF-8 name, sub-second mtime, a vendor record.
  file("placeholder", Buffer.from([0, 1, 2, 0xff]), (h) => {
    h.name = nonUtf8;
    h.xattrs.set(bytes("user.bin"), bytes("\x00\xff\x80"));
    h.paxExtra.set("VENDOR.key", bytes("v\xe9"));
    h.mtimeNsec = 250_000_000;
    h.keepSubsecond = true;
  }),
  (() => {
    const h = emptyHeader(toByteString("dir/"), "5");
    h.mode = 0o755;
    return entry(h);
  })(),
  file("empty", ""),
  file("big", Buffer.alloc(70_000, 7)),
];
const TAR = Buffer.concat([...tarParts, END]);

describe("readTarEntries (own tar reader)", () => {
  it("keeps raw bytes: names, link names, PAX values, binary xattrs", async () => {
    const got = await read(Readable.from([TAR]));
    expect(got.map((g) => fromByteString(g.name as ByteString))).toEqual([
      "café.txt",
      longName,
      "gnu-link",
      "bin/\ufffd\ufffd-name",
      "dir/",
      "empty",
      "big",
    ]);
    expect(got[0]?.name).toBe(toByteString("café.txt"));
    expect(got[0]?.body).toBe("bonjour\n");
    expect(got[1]?.header.gnu).toBe(true);
    expect(got[1]?.body).toBe("x".repeat(1000));
    expect(got[2]?.header.linkname).toBe(`${"t/".repeat(60)}target`);
    const pax = got[3]?.header as TarHeader;
    expect(pax.name).toBe(nonUtf8);
    expect(pax.xattrs.get(bytes("user.bin"))).toBe("\x00\xff\x80");
    expect(pax.paxExtra.get("VENDOR.key")).toBe("v\xe9");
    expect([pax.mtimeSec, pax.mtimeNsec, pax.keepSubsecond]).toEqual([
      1_700_000_000,
      250_000_000,
      true,
    ]);
    expect(got[3]?.body).toBe("\x00\x01\x02\xff");
    expect(got[4]?.type).toBe("5");
    expect(got[6]?.body.length).toBe(70_000);
  });

  it("re-encodes every header to the same bytes", async () => {
    const got = await read(Readable.from([TAR]));
    const again = Buffer.concat([
      ...got.map((g) => entry(g.header, Buffer.from(g.body, "latin1"))),
      END,
    ]);
    expect(again.equals(TAR)).toBe(true);
  });

  it("gives the same entries whatever the input's chunking, and gzip or not", async () => {
    const whole = await read(Readable.from([TAR]));
    for (const size of [1, 7, 511, 512, 513, 4096]) {
      expect(await read(chunked(TAR, size))).toEqual(whole);
    }
    expect(await read(chunked(gzipSync(TAR), 333))).toEqual(whole);
  });

  it("skips bodies the consumer leaves unread", async () => {
    const got = await read(chunked(TAR, 100), true);
    expect(got.map((g) => g.size)).toEqual([8, 1000, 0, 4, 0, 0, 70_000]);
  });

  it("reads '\\0' entries named 'x/' as directories, a zero-size PAX header as none", async () => {
    const blk = encodeHeader(emptyHeader(toByteString("legacy/"), "0"));
    blk[156] = 0;
    // Fix the checksum after changing the type flag.
    blk.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of blk) sum += b;
    blk.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const paxHdr = Buffer.from(encodeHeader(emptyHeader(toByteString("PaxHeaders.0/x"), "0")));
    paxHdr[156] = 0x78; // 'x', size 0
    paxHdr.fill(0x20, 148, 156);
    sum = 0;
    for (const b of paxHdr) sum += b;
    paxHdr.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const got = await read(Readable.from([Buffer.concat([blk, paxHdr, file("x", "1"), END])]));
    expect(got.map((g) => [g.name, g.type])).toEqual([
      ["legacy/", "5"],
      ["x", "0"],
    ]);
    expect(got[1]?.header.keepSubsecond).toBe(true); // it was a PAX entry
  });

  it("ignores what follows the end-of-archive marker", async () => {
    const junk = Buffer.concat([file("a", "1"), END, Buffer.from("garbage that is not a tar")]);
    expect((await read(Readable.from([junk]))).map((g) => g.name)).toEqual(["a"]);
  });

  it("types truncation, bad checksums and bad PAX as FormatErrors", async () => {
    const one = file("a.txt", "y".repeat(2000));
    const first = file("first", "1");
    for (const cut of [100, 512 + 10, one.length - 1]) {
      const e = await fails(Buffer.concat([first, one.subarray(0, cut)]));
      expect(e.message).toMatch(/truncated input/);
    }
    const bad = Buffer.from(TAR);
    bad[10] ^= 0x41;
    expect((await fails(bad)).message).toMatch(/invalid tar header \(checksum/);
    const badPax = file("p", "", (h) => h.paxExtra.set("mtime", bytes("soon")));
    expect((await fails(badPax)).message).toBe('invalid PAX time "soon" for "p"');
  });

  it("types read and gunzip errors where they are met, by their code", async () => {
    const gz = gzipSync(TAR);
    const corrupt = Buffer.from(gz);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
    corrupt[Math.floor(corrupt.length / 2) + 1] ^= 0x55;
    expect((await fails(corrupt)).message).toMatch(/corrupted gzip data|truncated input/);
    expect((await fails(gz.subarray(0, gz.length - 20))).message).toMatch(/truncated input/);
    const failing = new Readable({
      read() {
        this.push(TAR.subarray(0, 1024));
        const e = Object.assign(new Error("EIO: i/o error, read"), {
          code: "EIO",
          syscall: "read",
        });
        this.destroy(e);
      },
    });
    const e = await read(failing).catch((x) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toBe("cannot read the input: i/o error");
    expect(e.cause?.code).toBe("EIO");
  });

  it("lets errors that are not the input's pass as they are", async () => {
    const broken = new Readable({
      read() {
        this.destroy(new TypeError("cannot read properties of undefined (reading 'header')"));
      },
    });
    const e = await read(broken).catch((x) => x);
    expect(e).toBeInstanceOf(TypeError);
    expect(e).not.toBeInstanceOf(FormatError);
  });
});
