import { readFileSync, realpathSync } from "node:fs";
import { BufferRangeSource, type ByteRange, LayerReader, type RangeSource } from "@seekable/format";
import { ImageFS } from "@seekable/reader";
import { dynamicProgram } from "@seekable/test-kit/dynamic-program.js";
import { esgzBlob, type TarItem } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChunkPool } from "../src/chunks.js";
import { Content } from "../src/content.js";
import { dynamicInfo, parseElfHeader, stringTableOf } from "../src/guess/elf.js";
import { ContentFiles } from "../src/guess/files.js";
import { LoaderPrefetch } from "../src/guess/loader-prefetch.js";

// A real program of this machine and the libraries the dynamic loader opens for it.
const LS = realpathSync("/bin/ls");
const lsBytes = readFileSync(LS);
const lddLibs = dynamicProgram().libs;

function parseFile(bytes: Buffer) {
  const h = parseElfHeader(bytes.subarray(0, 64 << 10));
  if (!h?.dynamic) return { h };
  const dyn = bytes.subarray(h.dynamic.offset, h.dynamic.offset + h.dynamic.length);
  const str = stringTableOf(h, dyn);
  const strtab = str && bytes.subarray(str.offset, str.offset + str.length);
  return { h, info: strtab && dynamicInfo(h, dyn, strtab) };
}

describe("ELF headers", () => {
  it("name a real program's interpreter and the libraries ldd finds", () => {
    const { h, info } = parseFile(lsBytes);
    expect(h?.interp).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(info?.needed.length).toBeGreaterThan(0);
    expect(info?.needed).toContain("libc.so.6");
    // Every direct dependency is among what the loader resolves (ldd lists them all).
    for (const n of info?.needed ?? []) expect(lddLibs.map((l) => l.name)).toContain(n);
    // A shared library: no interpreter, libc's own dependency on ld.so.
    const libc = lddLibs.find((l) => l.name === "libc.so.6");
    const lib = parseFile(readFileSync(libc?.path as string));
    expect(lib.h?.interp).toBeUndefined();
    expect(lib.info?.needed).toContain("ld-linux-x86-64.so.2");
  });

  it("never throws on damaged headers and names only printable paths", () => {
    const head = Buffer.from(lsBytes.subarray(0, 8192));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(8191), fc.nat(255)), { minLength: 1, maxLength: 40 }),
        fc.nat(8192),
        (edits, cut) => {
          const b = Buffer.from(head);
          for (const [at, v] of edits) b[at] = v;
          const h = parseElfHeader(b.subarray(0, cut));
          if (!h) return;
          if (h.interp) expect(h.interp).toMatch(/^[\x20-\x7e]+$/);
          const info = dynamicInfo(h, b, b);
          for (const n of info.needed) expect(n).toMatch(/^[\x20-\x7e]+$/);
          stringTableOf(h, b);
        },
      ),
      { numRuns: 400 },
    );
    expect(parseElfHeader(Buffer.from("#!/bin/sh\necho not elf\n".repeat(4)))).toBeUndefined();
    expect(parseElfHeader(lsBytes.subarray(0, 40))).toBeUndefined();
  });
});

/** Reads of the layer blob, as lists of ranges (one list = one request to a registry). */
class RecordingSource implements RangeSource {
  readonly reads: ByteRange[][] = [];
  constructor(private readonly inner: RangeSource) {}
  get size() {
    return this.inner.size;
  }
  read(ranges: ByteRange[], signal?: AbortSignal) {
    this.reads.push(ranges);
    return this.inner.read(ranges, signal);
  }
}

/** ls, its libraries and unrelated files between them, as one usr-merged layer. */
async function image() {
  const prog = dynamicProgram();
  const libDir = "usr/lib/x86_64-linux-gnu";
  const items: TarItem[] = [
    ...prog.base,
    ...prog.app.filter((it) => it.body),
    { name: "usr/bin/not-elf", body: "#!/bin/sh\n".repeat(50), mode: 0o755 },
  ];
  const blob = await esgzBlob(items);
  const source = new RecordingSource(new BufferRangeSource(blob));
  const reader = await LayerReader.open(source);
  const fs = new ImageFS([reader]);
  const pool = new ChunkPool(64 << 20, undefined, { enabled: false });
  const content = new Content([{ view: reader, reader }], pool);
  return { source, reader, fs, pool, content, libDir };
}

describe("LoaderPrefetch", () => {
  it("fetches the interpreter, ld.so.cache and the libraries after the program's first read, one request per round of dependencies", async () => {
    const { source, fs, content, libDir } = await image();
    const loader = new LoaderPrefetch(fs, new ContentFiles(() => content));
    const ls = fs.lookup("usr/bin/ls");
    if (!ls) throw new Error("no ls");
    const before = source.reads.length;
    await content.read(ls, Buffer.alloc(4096), 4096, 0);
    loader.firstRead(ls);
    await loader.settled();
    // ls's own chunk; one request for the interpreter, ld.so.cache and ls's own libraries
    // (one range each); one more for what those libraries need in turn, if anything.
    const direct = parseFile(lsBytes).info?.needed ?? [];
    const transitive = lddLibs.filter((l) => !direct.includes(l.name));
    const reads = source.reads.slice(before);
    expect(reads.length).toBe(transitive.length > 0 ? 3 : 2);
    expect(reads[1].length).toBe(2 + direct.length);
    if (transitive.length > 0) expect(reads[2].length).toBe(transitive.length);
    const wanted = [
      `${libDir}/ld-linux-x86-64.so.2`,
      "etc/ld.so.cache",
      ...lddLibs.map((l) => `${libDir}/${l.name}`),
    ];
    for (const p of wanted) {
      const m = fs.lookup(p);
      if (!m) throw new Error(p);
      const items = content.items(m, 0, 1) ?? [];
      expect(items.length, p).toBeGreaterThan(0);
      expect(content.pool.peek(items), p).toBeDefined();
    }
    // The loader's own reads now cost nothing: every file is served from what was fetched.
    const after = source.reads.length;
    for (const p of wanted) {
      const m = fs.lookup(p);
      if (!m) throw new Error(p);
      const buf = Buffer.alloc(4096);
      const n = await content.read(m, buf, 4096, 0);
      expect(n).toBeGreaterThan(0);
    }
    expect(source.reads.length).toBe(after);
    // The symlinked path resolves to the same file.
    expect(loader.resolve("/lib64/ld-linux-x86-64.so.2")?.node.path).toBe(
      `${libDir}/ld-linux-x86-64.so.2`,
    );
  });

  it("leaves files that are not ELF alone, and fetches nothing for them", async () => {
    const { source, fs, content } = await image();
    const loader = new LoaderPrefetch(fs, new ContentFiles(() => content));
    const m = fs.lookup("usr/bin/not-elf");
    if (!m) throw new Error("no file");
    await content.read(m, Buffer.alloc(512), 512, 0);
    const before = source.reads.length;
    loader.firstRead(m);
    await loader.settled();
    expect(source.reads.length).toBe(before);
  });

  it("follows symlink loops no further than the kernel does", async () => {
    const { fs, content } = await image();
    const loader = new LoaderPrefetch(fs, new ContentFiles(() => content));
    expect(loader.resolve("/lib/x86_64-linux-gnu/libc.so.6")).toBeDefined();
    expect(loader.resolve("/usr/../lib/x86_64-linux-gnu/libc.so.6")).toBeDefined();
    expect(loader.resolve("/nonexistent/libc.so.6")).toBeUndefined();
  });
});
