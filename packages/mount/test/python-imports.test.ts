import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BufferRangeSource, type ByteRange, LayerReader, type RangeSource } from "@seekable/format";
import { ImageFS } from "@seekable/reader";
import { esgzBlob, type TarItem } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChunkPool } from "../src/chunks.js";
import { Content } from "../src/content.js";
import { ContentFiles } from "../src/guess/files.js";
import { pycImports, pycVersion } from "../src/guess/pyc.js";
import { PythonImports } from "../src/guess/python-imports.js";

// This machine's Python and its compiled standard library: the ground truth is Python's own
// `dis` of the same files.
const PY = execFileSync(
  "python3",
  ["-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
  {
    encoding: "utf8",
  },
)
  .trim()
  .split(" ");
const LIB = `/usr/lib/python${PY[0]}.${PY[1]}`;
const TAG = `cpython-${PY[0]}${PY[1]}`;
const pyc = (mod: string) => {
  const parts = mod.split("/");
  const name = parts.pop() as string;
  return join(LIB, ...parts, "__pycache__", `${name}.${TAG}.pyc`);
};

/** Python's own view: IMPORT_NAME of the module code and class bodies (not functions). */
function truth(file: string): { name: string; level: number; fromlist: string[] }[] {
  const script = `
import dis, marshal, sys, json, types
data = open(sys.argv[1], 'rb').read()
out = []
def walk(c, top):
    if not top and c.co_flags & 0x2: return
    consts = []
    for i in dis.get_instructions(c):
        if i.opname == 'LOAD_CONST': consts = (consts + [i.argval])[-2:]
        elif i.opname == 'IMPORT_NAME':
            level, fl = consts[-2:]
            out.append({'name': i.argval, 'level': level, 'fromlist': [f for f in (fl or ()) if f != '*']})
        elif i.opname not in ('CACHE', 'EXTENDED_ARG'): consts = []
    for k in c.co_consts:
        if isinstance(k, types.CodeType): walk(k, False)
walk(marshal.loads(data[16:]), True)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync("python3", ["-c", script, file], { encoding: "utf8" }));
}

describe("pycImports", () => {
  it("finds the imports Python's dis finds, in this machine's standard library", () => {
    const files = [
      pyc("json/__init__"),
      pyc("json/decoder"),
      pyc("re/__init__"),
      pyc("enum"),
      pyc("collections/__init__"),
      pyc("encodings/__init__"),
      pyc("typing"),
      pyc("email/message"),
    ];
    for (const f of files) {
      const b = readFileSync(f);
      expect(pycVersion(b), f).toEqual([Number(PY[0]), Number(PY[1])]);
      expect(pycImports(b), f).toEqual(truth(f));
    }
    expect(pycImports(readFileSync(pyc("json/__init__"))).map((i) => i.name)).toEqual([
      "decoder",
      "encoder",
      "codecs",
    ]);
  });

  it("never throws or runs away on damaged bytes", () => {
    const good = readFileSync(pyc("json/decoder"));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { minLength: 1, maxLength: 30 }),
        fc.nat(good.length),
        (edits, cut) => {
          const b = Buffer.from(good);
          for (const [at, v] of edits) b[at] = v;
          for (const imp of pycImports(b.subarray(0, cut))) {
            expect(typeof imp.name).toBe("string");
            expect(imp.level).toBeGreaterThanOrEqual(0);
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(pycImports(Buffer.from("not a pyc at all, just text\n".repeat(10)))).toEqual([]);
  });
});

/** The json, re, collections and encodings packages and the stdlib's top level, as a layer. */
async function stdlibLayer(): Promise<Buffer> {
  const items: TarItem[] = [{ name: "usr/" }, { name: "usr/lib/" }, { name: `${LIB.slice(1)}/` }];
  for (const d of ["", "json", "re", "collections", "encodings"]) {
    const src = join(LIB, d);
    if (d) items.push({ name: `${LIB.slice(1)}/${d}/` });
    items.push({ name: `${LIB.slice(1)}/${d ? `${d}/` : ""}__pycache__/` });
    for (const f of readdirSync(join(src, "__pycache__")).sort()) {
      if (!f.endsWith(`.${TAG}.pyc`)) continue;
      items.push({
        name: `${LIB.slice(1)}/${d ? `${d}/` : ""}__pycache__/${f}`,
        body: readFileSync(join(src, "__pycache__", f)),
      });
    }
  }
  const blob = await esgzBlob(items);
  return blob;
}

/** A source whose answers are altered while `corrupt` is set (a hostile registry). */
class AlteringSource implements RangeSource {
  corrupt = false;
  readonly inner: BufferRangeSource;
  constructor(blob: Buffer) {
    this.inner = new BufferRangeSource(blob);
  }
  get size() {
    return this.inner.size;
  }
  async read(ranges: ByteRange[]) {
    const out = await this.inner.read(ranges);
    if (!this.corrupt) return out;
    return out.map((b) => {
      const c = Buffer.from(b);
      c[c.length >> 1] ^= 0xff;
      return c;
    });
  }
}

async function setUp(source: RangeSource) {
  const reader = await LayerReader.open(source);
  const fs = new ImageFS([reader]);
  // A generous budget: the guesses are what is tested, not the budget.
  const pool = new ChunkPool(64 << 20, undefined, { enabled: false, spareRatio: 100 });
  const content = new Content([{ view: reader, reader }], pool);
  const imports = new PythonImports(fs, new ContentFiles(() => content));
  const at = (mod: string) => {
    const m = fs.lookup(pyc(mod).slice(1));
    if (!m) throw new Error(`${mod} is not in the image`);
    return m;
  };
  const fetched = (mod: string) => pool.has(content.items(at(mod), 0, 1)?.[0]?.key ?? "");
  return { pool, content, imports, at, fetched };
}

describe("PythonImports", () => {
  it("fetches what a module imports, and what those import, before Python asks", async () => {
    const { pool, content, imports, at, fetched } = await setUp(
      new BufferRangeSource(await stdlibLayer()),
    );
    const json = at("json/__init__");
    await content.read(json, Buffer.alloc(64), 64, 0);
    imports.firstRead(json);
    await imports.settled();
    // json imports .decoder and .encoder; decoder imports re and json.scanner; re imports
    // enum, functools, its _compiler and _parser: three levels, none read by anyone yet.
    for (const mod of ["json/decoder", "json/encoder", "json/scanner", "re/__init__", "enum"])
      expect(fetched(mod), mod).toBe(true);
    // Frozen into the interpreter (never read) and never imported: left alone.
    expect(fetched("codecs")).toBe(false);
    expect(fetched("json/tool")).toBe(false);
    expect(fetched("typing")).toBe(false);
    // The guesses count as unused bytes until a read wants them.
    expect(pool.unusedBytes).toBeGreaterThan(0);
    const before = pool.unusedBytes;
    await content.read(at("json/decoder"), Buffer.alloc(64), 64, 0);
    expect(pool.unusedBytes).toBeLessThan(before);
  });

  it("never serves an altered guess: the read that wants it fetches and verifies again", async () => {
    const source = new AlteringSource(await stdlibLayer());
    const { pool, content, imports, at, fetched } = await setUp(source);
    const json = at("json/__init__");
    await content.read(json, Buffer.alloc(64), 64, 0);
    source.corrupt = true; // every guess arrives altered
    imports.firstRead(json);
    await imports.settled();
    expect(fetched("json/decoder")).toBe(false); // failed verification: not kept
    expect(pool.unusedBytes).toBe(0); // and no longer holds the budget
    source.corrupt = false;
    const file = readFileSync(pyc("json/decoder"));
    const buf = Buffer.alloc(file.length);
    expect(await content.read(at("json/decoder"), buf, buf.length, 0)).toBe(file.length);
    expect(buf.equals(file)).toBe(true);
  });
});
