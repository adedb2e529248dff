import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  BufferRangeSource,
  type ByteRange,
  cleanEntryName,
  convertLayer,
  FormatError,
  formatModtime,
  LANDMARK_CONTENTS,
  LayerReader,
  memberHeader,
  NO_PREFETCH_LANDMARK,
  PREFETCH_LANDMARK,
  type RangeSource,
  readTarEntries,
  type TocEntry,
} from "@seekable/format";
import { makeTar } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";

const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const EMPTY = sha(new Uint8Array(0));

class MemSink {
  chunks: Buffer[] = [];
  resets = 0;
  constructor(resettable = true) {
    if (!resettable) (this as { reset?: unknown }).reset = undefined;
  }
  async write(d: Uint8Array): Promise<void> {
    this.chunks.push(Buffer.from(d));
  }
  async reset(): Promise<void> {
    this.resets++;
    this.chunks = [];
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A RangeSource that records what was fetched. */
class CountingSource implements RangeSource {
  readonly size: number;
  fetched = 0;
  calls: ByteRange[][] = [];
  constructor(private readonly data: Buffer) {
    this.size = data.length;
  }
  async read(ranges: ByteRange[]): Promise<Uint8Array[]> {
    this.calls.push(ranges);
    return ranges.map((r) => {
      if (r.offset < 0 || r.offset + r.length > this.size) throw new RangeError("out of range");
      this.fetched += r.length;
      return this.data.subarray(r.offset, r.offset + r.length);
    });
  }
}

interface Spec {
  name: string;
  type: "file" | "directory" | "symlink" | "link";
  data?: Buffer;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number; // seconds
  linkname?: string;
  xattrs?: Record<string, string>;
}

/** The specs as a tar (test/helpers/tar.ts); bodies only for regular files. */
const packTar = (specs: Spec[]): Promise<Buffer> =>
  makeTar(
    specs.map((s) => ({
      name: s.name,
      type: s.type,
      body: s.type === "file" ? (s.data ?? Buffer.alloc(0)) : undefined,
      linkname: s.linkname,
      mode: s.mode,
      uid: s.uid,
      gid: s.gid,
      uname: s.uname,
      gname: s.gname,
      mtime: new Date(s.mtime * 1000),
      xattrs: s.xattrs,
    })),
  );

const input = (tar: Buffer) => ({ open: () => Readable.from([tar]) });

async function convert(
  tar: Buffer,
  opts: Parameters<typeof convertLayer>[2] = {},
  sink = new MemSink(),
) {
  const result = await convertLayer(input(tar), sink, { threads: 1, level: 1, ...opts });
  return { result, blob: sink.bytes, sink };
}

/** Deterministic pseudo-random content; some compressible, some not. */
function content(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  const text = seed % 3 === 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = text ? 97 + (x % 7) : x & 0xff;
  }
  return b;
}

/** Entries of a tar stream as seekable parses input (names as byte strings). */
async function untar(tar: Buffer) {
  const out: { header: { name: string }; body: Buffer }[] = [];
  for await (const e of readTarEntries(Readable.from([tar]))) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(Buffer.from(c));
    out.push({ header: { name: e.header.name }, body: Buffer.concat(chunks) });
  }
  return out;
}

const TYPE_OF: Record<Spec["type"], string> = {
  file: "reg",
  directory: "dir",
  symlink: "symlink",
  link: "hardlink",
};

// ---- random trees ----
const CHUNK = 1000;
const sizeArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: CHUNK - 1 }),
  fc.constant(CHUNK),
  fc.integer({ min: CHUNK + 1, max: 3 * CHUNK - 1 }),
  fc.constant(2 * CHUNK),
  fc.constant(3 * CHUNK),
);
const metaArb = fc.record({
  mode: fc.integer({ min: 1, max: 0o7777 }),
  uid: fc.integer({ min: 0, max: 70000 }),
  gid: fc.integer({ min: 0, max: 70000 }),
  uname: fc.constantFrom("", "root", "user", "u2"),
  gname: fc.constantFrom("", "root", "staff"),
  mtime: fc.integer({ min: 1, max: 2 ** 31 - 1 }), // tar-stream pack stores mtime with |0
});
const DIRS = ["", "d1/", "d1/d2/", "d3/", "caf\u00e9/"];
const treeArb = fc
  .record({
    prefix: fc.constantFrom("", "./"),
    explicitDirs: fc.subarray(DIRS.slice(1)),
    files: fc.array(
      fc.record({
        dir: fc.constantFrom(...DIRS),
        size: sizeArb,
        meta: metaArb,
        seed: fc.integer({ min: 1, max: 1e9 }),
        xattr: fc.option(fc.stringMatching(/^[a-z0-9=]{0,20}$/), { nil: undefined }),
      }),
      { minLength: 1, maxLength: 8 },
    ),
    links: fc.array(
      fc.record({ kind: fc.constantFrom("symlink", "link"), target: fc.nat(), meta: metaArb }),
      { maxLength: 3 },
    ),
    dirMeta: metaArb,
  })
  .map((t) => {
    const specs: Spec[] = [];
    const encode = (n: string) => n; // tar-stream writes names as UTF-8
    for (const d of t.explicitDirs) {
      specs.push({ name: encode(t.prefix + d), type: "directory", ...t.dirMeta });
    }
    t.files.forEach((f, i) => {
      specs.push({
        name: encode(`${t.prefix}${f.dir}f${i}`),
        type: "file",
        data: content(f.seed, f.size),
        ...f.meta,
        xattrs: f.xattr === undefined ? undefined : { "user.k": f.xattr },
      });
    });
    const files = specs.filter((s) => s.type === "file");
    t.links.forEach((l, i) => {
      const target = files[l.target % files.length];
      specs.push({
        name: encode(`${t.prefix}l${i}`),
        type: l.kind as Spec["type"],
        linkname: target.name,
        ...l.meta,
      });
    });
    return specs;
  });

function isoSeconds(sec: number): string {
  return `${new Date(sec * 1000).toISOString().slice(0, 19)}Z`;
}

/** Structural checks of a converted blob against its TOC. */
function checkBlob(blob: Buffer, r: LayerReader, level: number, chunkSize: number): void {
  const entries = r.toc.entries;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.offset !== undefined) {
      // Every payload starts a gzip member framed as Go writes it.
      expect(blob.subarray(e.offset, e.offset + 10)).toEqual(Buffer.from(memberHeader(level)));
    }
    if (e.type === "reg") {
      const size = e.size ?? 0;
      expect(e.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      if (size === 0) {
        expect(e.digest).toBe(EMPTY);
        expect(e.offset).toBeUndefined();
        expect(e.chunkDigest).toBeUndefined();
        expect(e.chunkSize).toBeUndefined();
        continue;
      }
      // The file's chunks: this entry plus the following "chunk" entries.
      const chunks: TocEntry[] = [e];
      while (entries[i + chunks.length]?.type === "chunk") chunks.push(entries[i + chunks.length]);
      expect(chunks.length).toBe(Math.ceil(size / chunkSize));
      chunks.forEach((c, k) => {
        expect(c.name).toBe(e.name); // chunk entries carry the name too
        expect(c.chunkOffset ?? 0).toBe(k * chunkSize);
        expect(c.offset).toBeGreaterThan(0);
        expect(c.chunkDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
        const remain = size - k * chunkSize;
        // The reference's quirk: chunkSize is set when remain >= chunkSize, so a last chunk of
        // exactly chunkSize bytes carries it and a shorter one does not.
        if (remain >= chunkSize) expect(c.chunkSize).toBe(chunkSize);
        else expect(c.chunkSize).toBeUndefined();
      });
      if (chunks.length === 1) expect(e.chunkDigest).toBe(e.digest);
    }
  }
}

const dirsToClean: string[] = [];
afterAll(() => {
  for (const d of dirsToClean) rmSync(d, { recursive: true, force: true });
});

describe("convertLayer -> LayerReader round trip", () => {
  it("random trees: every file's content and metadata come back, blob is well formed", async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, fc.constantFrom(1, 6, 9), async (specs, level) => {
        const tar = await packTar(specs);
        const { result, blob } = await convert(tar, { chunkSize: CHUNK, level });
        // Blob digests and sizes.
        expect(result.size).toBe(blob.length);
        expect(result.digest).toBe(sha(blob));
        const unpacked = gunzipSync(blob);
        expect(result.diffID).toBe(sha(unpacked));
        expect(result.uncompressedSize).toBe(unpacked.length);
        const r = await LayerReader.open(new BufferRangeSource(blob));
        expect(r.legacy).toBe(false);
        expect(r.tocDigest).toBe(result.tocDigest);
        expect(sha(r.tocBytes)).toBe(result.tocDigest);
        // Landmark first when nothing is prioritized.
        expect(r.toc.entries[0].name).toBe(NO_PREFETCH_LANDMARK);
        expect(r.toc.entries[0].digest).toBe(sha(LANDMARK_CONTENTS));
        checkBlob(blob, r, level, CHUNK);
        // Readers back-fill an omitted userName/groupName from the previous entry with the
        // same id (the TOC cannot tell "" from "same as before").
        const wantU = new Map<string, string>();
        const wantG = new Map<string, string>();
        const lastU = new Map<number, string>();
        const lastG = new Map<number, string>();
        for (const s of specs) {
          wantU.set(s.name, s.uname || lastU.get(s.uid) || "");
          wantG.set(s.name, s.gname || lastG.get(s.gid) || "");
          if (s.uname) lastU.set(s.uid, s.uname);
          if (s.gname) lastG.set(s.gid, s.gname);
        }
        // Each spec comes back.
        for (const s of specs) {
          const utf8Name = s.name;
          const node = r.lookup(utf8Name);
          expect(node, s.name).toBeDefined();
          if (!node) continue;
          expect(node.type).toBe(TYPE_OF[s.type]);
          expect(node.mode).toBe(s.mode);
          expect(node.uid).toBe(s.uid);
          expect(node.gid).toBe(s.gid);
          expect(node.userName).toBe(wantU.get(s.name));
          expect(node.groupName).toBe(wantG.get(s.name));
          expect(node.modtime).toBe(isoSeconds(s.mtime));
          if (s.linkname) {
            expect(node.linkName).toBe(s.linkname);
          }
          if (s.xattrs) {
            expect(node.xattrs).toEqual({
              "user.k": Buffer.from(s.xattrs["user.k"]).toString("base64"),
            });
          } else {
            expect(node.xattrs).toEqual({});
          }
          if (s.type === "file") {
            const data = s.data as Buffer;
            expect(node.size).toBe(data.length);
            expect(node.digest).toBe(sha(data));
            expect(Buffer.from(await r.read(utf8Name))).toEqual(data);
            const streamed: Buffer[] = [];
            for await (const c of r.stream(utf8Name)) streamed.push(Buffer.from(c));
            expect(Buffer.concat(streamed)).toEqual(data);
          }
          if (s.type === "link") {
            const target = r.resolve(node);
            expect(target.path).toBe(cleanEntryName(s.linkname as string));
            const t = specs.find((x) => x.name === s.linkname) as Spec;
            expect(Buffer.from(await r.read(utf8Name))).toEqual(t.data);
          }
        }
        const v = await r.verify();
        expect(v.files).toBe(specs.filter((s) => s.type === "file").length + 1);
        // The decompressed blob is one valid tar: landmark, entries in order, the TOC entry.
        const ents = await untar(unpacked);
        expect(ents.map((e) => e.header.name)).toEqual([
          NO_PREFETCH_LANDMARK,
          ...specs.map((s) => Buffer.from(s.name, "utf8").toString("latin1")),
          "stargz.index.json",
        ]);
        specs.forEach((s, i) => {
          if (s.type === "file") expect(ents[i + 1].body).toEqual(s.data);
        });
        expect(ents[ents.length - 1].body).toEqual(Buffer.from(r.tocBytes));
      }),
      { numRuns: 30 },
    );
  });

  it("reading arbitrary byte ranges equals the source slice and fetches only covering chunks", async () => {
    const files = [0, 1, 999, 1000, 1001, 2500, 3000, 7777].map((size, i) => ({
      name: `dir/file${i}`,
      data: content(i + 11, size),
    }));
    const specs: Spec[] = files.map((f) => ({
      name: f.name,
      type: "file",
      data: f.data,
      mode: 0o644,
      uid: 0,
      gid: 0,
      uname: "",
      gname: "",
      mtime: 1700000000,
    }));
    const { blob } = await convert(await packTar(specs), { chunkSize: CHUNK });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...files),
        fc.nat({ max: 9000 }),
        fc.nat({ max: 9000 }),
        async (f, off, len) => {
          const src = new CountingSource(blob);
          const r = await LayerReader.open(src);
          src.fetched = 0;
          const got = Buffer.from(await r.read(f.name, off, len));
          expect(got).toEqual(f.data.subarray(off, off + len));
          // Fetched bytes: at most the members of the chunks that overlap the range.
          const node = r.lookup(f.name);
          const end = Math.min(f.data.length, off + len);
          const need = (node?.chunks ?? [])
            .filter((c) => off < end && c.chunkOffset < end && c.chunkOffset + c.chunkSize > off)
            .reduce((n, c) => n + (c.nextOffset - c.offset), 0);
          expect(src.fetched).toBe(need);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("output is byte-identical for 1, 2 and 4 threads", async () => {
    // Enough data for several compression batches (1 MiB each) spread over the workers.
    const specs: Spec[] = [];
    for (let i = 0; i < 40; i++) {
      specs.push({
        name: `f${i}`,
        type: "file",
        data: content(i + 1, (i * 37_003) % 150_000),
        mode: 0o644,
        uid: i,
        gid: i,
        uname: `u${i % 3}`,
        gname: "g",
        mtime: 1700000000 + i,
      });
    }
    const tar = await packTar(specs);
    const blobs: Buffer[] = [];
    for (const threads of [1, 2, 4]) {
      const { blob, result } = await convert(tar, { chunkSize: 16_384, level: 6, threads });
      expect(result.digest).toBe(sha(blob));
      blobs.push(blob);
    }
    expect(sha(blobs[1])).toBe(sha(blobs[0]));
    expect(sha(blobs[2])).toBe(sha(blobs[0]));
    // ...and run to run.
    const again = await convert(tar, { chunkSize: 16_384, level: 6, threads: 2 });
    expect(sha(again.blob)).toBe(sha(blobs[0]));
  });

  it("chunk layout: exactly chunk-size files get chunkSize (reference quirk), empty files only a digest", async () => {
    const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 5];
    const specs: Spec[] = sizes.map((size, i) => ({
      name: `s${i}`,
      type: "file",
      data: content(i + 3, size),
      mode: 0o600,
      uid: 1,
      gid: 1,
      uname: "",
      gname: "",
      mtime: 1,
    }));
    const { blob } = await convert(await packTar(specs), { chunkSize: CHUNK });
    const r = await LayerReader.open(new BufferRangeSource(blob));
    checkBlob(blob, r, 1, CHUNK);
    const byName = (n: string) => r.toc.entries.filter((e) => e.name === n);
    expect(byName("s0")).toEqual([
      {
        name: "s0",
        type: "reg",
        modtime: "1970-01-01T00:00:01Z",
        mode: 0o600,
        uid: 1,
        gid: 1,
        digest: EMPTY,
      },
    ]);
    expect(byName("s3")[0].chunkSize).toBe(CHUNK);
    expect(byName("s3").length).toBe(1);
    expect(byName("s2")[0].chunkSize).toBeUndefined();
    expect(byName("s5").map((e) => e.chunkSize)).toEqual([CHUNK, CHUNK]);
    expect(byName("s6").map((e) => e.chunkSize)).toEqual([CHUNK, CHUNK, undefined]);
    expect(byName("s6").map((e) => e.type)).toEqual(["reg", "chunk", "chunk"]);
  });

  it("userName/groupName are written only when they change for an id", async () => {
    const mk = (name: string, uid: number, uname: string): Spec => ({
      name,
      type: "file",
      data: Buffer.alloc(0),
      mode: 0o644,
      uid,
      gid: 0,
      uname,
      gname: "",
      mtime: 5,
    });
    const specs = [
      mk("a", 1, "x"),
      mk("b", 1, "x"),
      mk("c", 2, "x"),
      mk("d", 1, "y"),
      mk("e", 1, ""),
    ];
    const { blob } = await convert(await packTar(specs));
    const r = await LayerReader.open(new BufferRangeSource(blob));
    const un = (n: string) => r.toc.entries.find((e) => e.name === n)?.userName;
    expect(["a", "b", "c", "d", "e"].map(un)).toEqual(["x", undefined, "x", "y", undefined]);
    // Readers back-fill from the previous entry with the same id.
    expect(r.lookup("b")?.userName).toBe("x");
    expect(r.lookup("e")?.userName).toBe("y");
  });
});

describe("layout rules of the reference Build", () => {
  const base = {
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    mtime: 1700000000,
  };
  const file = (name: string, data = name): Spec => ({
    ...base,
    name,
    type: "file",
    data: Buffer.from(data),
  });
  const dir = (name: string): Spec => ({ ...base, name, type: "directory", mode: 0o755 });
  const names = (r: LayerReader) =>
    r.toc.entries.filter((e) => e.type !== "chunk").map((e) => e.name);

  it("duplicate names: the last copy wins, at the position of the last copy (both code paths)", async () => {
    const specs = [file("a", "first"), file("b"), file("./a", "second"), file("c")];
    const tar = await packTar(specs);
    for (const sink of [new MemSink(true), new MemSink(false)]) {
      const { blob } = await convert(tar, {}, sink);
      const r = await LayerReader.open(new BufferRangeSource(blob));
      expect(names(r)).toEqual([NO_PREFETCH_LANDMARK, "b", "./a", "c"]);
      expect(Buffer.from(await r.read("a")).toString()).toBe("second");
      expect((await r.verify()).files).toBe(4);
    }
  });

  it("input entries named stargz.index.json or landmarks are dropped", async () => {
    const specs = [
      file(".prefetch.landmark", "\x0f"),
      file("x"),
      file("./stargz.index.json", "{}"),
      file(".no.prefetch.landmark", "\x0f"),
      file("y"),
    ];
    const tar = await packTar(specs);
    for (const prioritizedFiles of [[], ["y"]]) {
      const { blob } = await convert(tar, { prioritizedFiles });
      const r = await LayerReader.open(new BufferRangeSource(blob));
      expect(names(r)).toEqual(
        prioritizedFiles.length === 0
          ? [NO_PREFETCH_LANDMARK, "x", "y"]
          : ["y", PREFETCH_LANDMARK, "x"],
      );
      const ents = await untar(gunzipSync(blob));
      expect(ents.filter((e) => e.header.name === "stargz.index.json").length).toBe(1);
    }
  });

  it("prioritized files come first with their parents and hardlink targets, then .prefetch.landmark", async () => {
    const specs: Spec[] = [
      dir("./"),
      dir("./etc/"),
      file("./etc/passwd"),
      dir("./usr/"),
      dir("./usr/bin/"),
      file("./usr/bin/sh"),
      { ...base, name: "./usr/bin/bash", type: "link", linkname: "./usr/bin/sh" },
      file("./usr/lib"),
      file("./z"),
    ];
    const tar = await packTar(specs);
    const { blob, result } = await convert(tar, {
      prioritizedFiles: ["usr/bin/bash", "/z", "etc/passwd"],
    });
    expect(result.missedPrioritized).toEqual([]);
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(names(r)).toEqual([
      "./",
      "./usr/",
      "./usr/bin/",
      "./usr/bin/sh",
      "./usr/bin/bash",
      "./z",
      "./etc/",
      "./etc/passwd",
      PREFETCH_LANDMARK,
      "./usr/lib",
    ]);
    // The prefetch region [0, landmark.offset) holds every prioritized payload.
    const lm = r.toc.entries.find((e) => e.name === PREFETCH_LANDMARK) as TocEntry;
    for (const n of ["./usr/bin/sh", "./z", "./etc/passwd"]) {
      const e = r.toc.entries.find((x) => x.name === n) as TocEntry;
      expect(e.offset as number).toBeLessThan(lm.offset as number);
    }
    expect(Buffer.from(await r.read("usr/bin/bash")).toString()).toBe("./usr/bin/sh");
    await r.verify();
  });

  it("a missing prioritized file fails, unless allowed: then it is reported", async () => {
    const tar = await packTar([file("a"), file("b")]);
    await expect(convert(tar, { prioritizedFiles: ["b", "nope"] })).rejects.toThrow(/nope/);
    await expect(convert(tar, { prioritizedFiles: ["b", "nope"] })).rejects.toBeInstanceOf(
      FormatError,
    );
    const { blob, result } = await convert(tar, {
      prioritizedFiles: ["b", "nope"],
      allowMissingPrioritized: true,
    });
    expect(result.missedPrioritized).toEqual(["nope"]);
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(names(r)).toEqual(["b", PREFETCH_LANDMARK, "a"]);
    // All missing: the reference still puts .prefetch.landmark first.
    const all = await convert(tar, { prioritizedFiles: ["nope"], allowMissingPrioritized: true });
    const r2 = await LayerReader.open(new BufferRangeSource(all.blob));
    expect(names(r2)).toEqual([PREFETCH_LANDMARK, "a", "b"]);
  });

  it("accepts a gzip-compressed input and gives the same blob as the plain tar", async () => {
    const tar = await packTar([file("a", "x".repeat(5000)), file("b")]);
    const plain = await convert(tar, { chunkSize: CHUNK });
    const gz = await convert(gzipSync(tar), { chunkSize: CHUNK });
    expect(sha(gz.blob)).toBe(sha(plain.blob));
  });
});

describe("GNU tar input", () => {
  function gnuTar(format: string): Buffer {
    const dir = mkdtempSync(join(tmpdir(), "seekable-gnu-"));
    dirsToClean.push(dir);
    const src = join(dir, "src");
    mkdirSync(join(src, "sub", "deeper"), { recursive: true });
    writeFileSync(join(src, "sub", "a.txt"), content(1, 2500));
    writeFileSync(join(src, "empty"), "");
    writeFileSync(join(src, "sub", "deeper", `${"n".repeat(120)}.bin`), content(2, 1000));
    symlinkSync("sub/a.txt", join(src, "link"));
    const out = join(dir, "in.tar");
    execFileSync("tar", [
      `--format=${format}`,
      "--sort=name",
      "--mtime=@1700000000",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-cf",
      out,
      "-C",
      src,
      ".",
    ]);
    return readFileSync(out);
  }

  it("round-trips GNU, POSIX and ustar archives made by GNU tar", async () => {
    for (const format of ["gnu", "posix"]) {
      const tar = gnuTar(format);
      const { blob } = await convert(tar, { chunkSize: CHUNK });
      const r = await LayerReader.open(new BufferRangeSource(blob));
      expect(Buffer.from(await r.read("sub/a.txt"))).toEqual(content(1, 2500));
      expect(Buffer.from(await r.read(`sub/deeper/${"n".repeat(120)}.bin`))).toEqual(
        content(2, 1000),
      );
      expect(r.lookup("link")?.linkName).toBe("sub/a.txt");
      expect(r.lookup("empty")?.digest).toBe(EMPTY);
      expect(r.lookup("sub")?.modtime).toBe("2023-11-14T22:13:20Z");
      // GNU tar lists the converted blob (it is a valid tar.gz).
      const dir = mkdtempSync(join(tmpdir(), "seekable-gnu-out-"));
      dirsToClean.push(dir);
      writeFileSync(join(dir, "out.tar.gz"), blob);
      const list = execFileSync("tar", ["-tzf", join(dir, "out.tar.gz")])
        .toString()
        .trim()
        .split("\n");
      expect(list[0]).toBe(NO_PREFETCH_LANDMARK);
      expect(list).toContain(`./sub/deeper/${"n".repeat(120)}.bin`);
      expect(list[list.length - 1]).toBe("stargz.index.json");
    }
  });

  // The reference re-encodes each header with Go's archive/tar Writer, which keeps the
  // input's format: a GNU-format header (magic "ustar  \0", GNU tar's default) is written back
  // as GNU, long names as ././@LongLink. Checked against Debian's estargz 0.12 Build: for the
  // same GNU tar input its uncompressed stream has "ustar  \0" headers, so the DiffIDs differ.
  it("GNU-format input headers keep the GNU magic, as the reference writes them", async () => {
    const tar = gnuTar("gnu");
    const { blob } = await convert(tar, { chunkSize: CHUNK });
    const out = gunzipSync(blob);
    // Block 0 is the landmark (written as USTAR by both); block 2 is the first input entry "./".
    expect(out.toString("latin1", 1024, 1027)).toBe("./\0");
    expect(out.toString("latin1", 1024 + 257, 1024 + 265)).toBe("ustar  \0");
  });
});

describe("PAX input re-encoded as the reference's Go archive/tar Writer does", () => {
  /** A raw USTAR-magic block (mode 644, ids 0), as another tool would write it. */
  function block(name: string, type: string, size: number, mtime = 0): Buffer {
    const b = Buffer.alloc(512);
    b.write(name, 0, "latin1");
    b.write("0000644\0", 100);
    b.write("0000000\0", 108);
    b.write("0000000\0", 116);
    b.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
    b.write(`${mtime.toString(8).padStart(11, "0")}\0`, 136);
    b[156] = type.charCodeAt(0);
    b.write("ustar\x0000", 257, "latin1");
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of b) sum += x;
    b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    return b;
  }
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
  function paxEntry(name: string, records: string, body: Buffer): Buffer {
    const data = Buffer.from(records, "latin1");
    return Buffer.concat([
      block(`PaxHeaders.0/${name}`, "x", data.length),
      pad(data),
      block(name, "0", body.length, 1700000000),
      pad(body),
    ]);
  }
  // Blocks of the decompressed blob: 0 landmark header, 1 landmark payload, 2.. first entry.
  const blockAt = (tar: Buffer, i: number) => tar.subarray(i * 512, (i + 1) * 512);

  // Go's Header.allowedFormats copies a basic-key record (path, uid, mtime, ...) of
  // hdr.PAXRecords into the output when it equals the header's value (common.go,
  // "if v, ok := h.PAXRecords[paxKey]; ok && v == s { paxHdrs[paxKey] = v }"). tar-stream
  // writes "path=" in every PAX header it emits, so xattr-carrying layers hit this. Checked
  // against Debian's estargz 0.12 Build: its output has "25 SCHILY.xattr.user.k=v\n9 path=a\n".
  it("basic PAX records of the input that match the header are kept", async () => {
    const tar = Buffer.concat([
      paxEntry("a", "25 SCHILY.xattr.user.k=v\n9 path=a\n", Buffer.from("hello")),
      Buffer.alloc(1024),
    ]);
    const { blob } = await convert(tar);
    const out = gunzipSync(blob);
    expect(blockAt(out, 2)[156]).toBe(0x78);
    expect(blockAt(out, 3).toString("latin1").replace(/\0+$/, "")).toBe(
      "25 SCHILY.xattr.user.k=v\n9 path=a\n",
    );
  });

  // Go's writePAXHeader writes the extended header only "if len(paxHdrs) > 0": a PAX input
  // whose records need not be repeated gets a plain header (same check against Debian's Build).
  it("no empty PAX extended header is written when no record is needed", async () => {
    const tar = Buffer.concat([
      paxEntry("b", "22 mtime=1700000000.0\n", Buffer.from("hi")),
      Buffer.alloc(1024),
    ]);
    const { blob } = await convert(tar);
    const out = gunzipSync(blob);
    expect(blockAt(out, 2).toString("latin1", 0, 2)).toBe("b\0");
    expect(blockAt(out, 2)[156]).toBe(0x30);
  });

  // A PAX extended header of size 0 is valid (Go and GNU tar read it); tar-stream's extract
  // leaves _longHeader set when such a header has no data and then misparses the rest
  // ("Invalid tar header"). seekable writes exactly such headers (see above), so it cannot
  // re-convert its own output.
  it("an input with an empty PAX extended header converts, and so does seekable's own output", async () => {
    const tar = Buffer.concat([
      paxEntry("b", "", Buffer.from("hi")),
      paxEntry("c", "", Buffer.from("there")),
      Buffer.alloc(1024),
    ]);
    const { blob } = await convert(tar);
    const r = await LayerReader.open(new BufferRangeSource(blob));
    expect(Buffer.from(await r.read("c")).toString()).toBe("there");
    const again = await convert(blob);
    const r2 = await LayerReader.open(new BufferRangeSource(again.blob));
    expect(Buffer.from(await r2.read("b")).toString()).toBe("hi");
  });
});

describe("formatModtime (Go: UTC, rounded to the second, RFC 3339)", () => {
  it("known values", () => {
    expect(formatModtime(0, 0)).toBeUndefined();
    expect(formatModtime(0, 900_000_000)).toBeUndefined(); // Unix() == 0
    expect(formatModtime(1700000000, 0)).toBe("2023-11-14T22:13:20Z");
    expect(formatModtime(1700000000, 499_999_999)).toBe("2023-11-14T22:13:20Z");
    expect(formatModtime(1700000000, 500_000_000)).toBe("2023-11-14T22:13:21Z");
    expect(formatModtime(-1, 0)).toBe("1969-12-31T23:59:59Z");
  });

  it("years past 9999 are formatted as Go does", () => {
    // Go's time.Format(RFC3339) writes the year with as many digits as it has.
    expect(formatModtime(253402300800, 0)).toBe("10000-01-01T00:00:00Z");
  });
});
