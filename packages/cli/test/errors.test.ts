import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32, gunzipSync, gzipSync } from "node:zlib";
import {
  BufferRangeSource,
  emptyHeader,
  encodeFooter,
  encodeHeader,
  gzipMember,
  LayerReader,
  padding,
  serializeToc,
  type Toc,
  toByteString,
} from "@seekable/format";
import { type RunResult, run as runProcess } from "@seekable/test-kit/run.js";
import { makeTar } from "@seekable/test-kit/tar.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let root: string;
let childTmp: string;

/** Runs the built CLI with its own TMPDIR (checked for leftovers). */
function run(args: string[], stdin?: Buffer, timeoutMs = 60_000, cwd?: string): Promise<RunResult> {
  return runProcess(process.execPath, [CLI, ...args], {
    input: stdin,
    env: { ...process.env, TMPDIR: childTmp },
    timeoutMs,
    cwd,
  });
}

/** Exit 1, one line "seekable: …" naming `names`, no stack trace, not hung (the run's timeout). */
function expectFailure(r: RunResult, ...names: string[]): void {
  expect(r.signal, `killed (hang?) after ${r.ms} ms; stderr: ${r.stderr}`).toBeNull();
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^seekable: [^\n]+\n$/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/(Error|TypeError|RangeError): /);
  for (const n of names) expect(r.stderr, r.stderr).toContain(n);
  expect(readdirSync(childTmp)).toEqual([]);
}

function expectUsage(r: RunResult): void {
  expect(r.signal).toBeNull();
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(/^seekable: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** Incompressible deterministic bytes (sha256 in counter mode). */
function content(seed: number, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i * 32 < size; i++) {
    parts.push(createHash("sha256").update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(parts).subarray(0, size);
}

const packTar = (files: [string, Buffer][]): Promise<Buffer> =>
  makeTar(files.map(([name, body]) => ({ name, body, mtime: new Date(1e12) })));

let tar: Buffer;
let blob: Buffer;
let blobPath: string;
const BIG = content(7, 3500);
const CONF = Buffer.from("key=value\n");

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "seekable-err-"));
  childTmp = join(root, "tmp");
  mkdirSync(childTmp);
  tar = await packTar([
    ["etc/conf", CONF],
    ["lib/big", BIG],
    ["lib/other", content(8, 1500)],
  ]);
  const inPath = join(root, "good.tar");
  writeFileSync(inPath, tar);
  blobPath = join(root, "good.esgz");
  const r = await run(["convert", inPath, blobPath, "--chunk-size", "1000"]);
  expect(r.code, r.stderr).toBe(0);
  blob = readFileSync(blobPath);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** Writes `data` as an input file and returns [inputPath, emptyOutputDir, outputPath]. */
function setup(name: string, data: Buffer): [string, string, string] {
  const dir = join(root, `case${n++}`);
  mkdirSync(dir);
  const inPath = join(dir, name);
  writeFileSync(inPath, data);
  const outDir = join(dir, "out");
  mkdirSync(outDir);
  return [inPath, outDir, join(outDir, "result.esgz")];
}

async function expectConvertFails(name: string, data: Buffer): Promise<RunResult> {
  const [inPath, outDir, out] = setup(name, data);
  const r = await run(["convert", inPath, out, "--chunk-size", "1000"]);
  expectFailure(r, inPath);
  expect(readdirSync(outDir), "no output and no temp file").toEqual([]);
  return r;
}

describe("convert: bad input exits 1 with one line naming the input, leaves nothing behind", () => {
  it("random bytes", async () => {
    await expectConvertFails("random.bin", content(99, 4096));
  });

  it("a text file", async () => {
    await expectConvertFails(
      "notes.txt",
      Buffer.from("hello world\nthis is not a tar\n".repeat(40)),
    );
  });

  it("an empty file", async () => {
    await expectConvertFails("zero.tar", Buffer.alloc(0));
  });

  // describeError skips the "INPUT: " prefix when the message merely starts with the input's
  // name: an input called "empty" gets "seekable: empty input (not a tar or tar.gz)".
  it("an empty file called 'empty' is still named", async () => {
    const [inPath, outDir] = setup("empty", Buffer.alloc(0));
    // Run from the input's directory so the input is given as the bare name "empty".
    const r = await run(["convert", "empty", "out/o.esgz"], undefined, 60_000, dirname(inPath));
    expectFailure(r);
    expect(r.stderr).toMatch(/^seekable: empty: /);
    expect(readdirSync(outDir)).toEqual([]);
  });

  it("a truncated tar.gz, cut at several points", async () => {
    const gz = gzipSync(tar);
    const cuts = [
      2,
      5,
      12,
      40,
      Math.floor(gz.length / 2),
      gz.length - 9,
      gz.length - 4,
      gz.length - 1,
    ];
    await Promise.all(cuts.map((c) => expectConvertFails(`cut${c}.tar.gz`, gz.subarray(0, c))));
  });

  it("a corrupted gzip (bytes flipped in the middle, in the CRC, in ISIZE)", async () => {
    const gz = gzipSync(tar);
    const mid = Buffer.from(gz);
    const m = Math.floor(mid.length / 2);
    mid[m] ^= 0xff;
    mid[m + 1] ^= 0x55;
    mid[m + 7] ^= 0x0f;
    const crc = Buffer.from(gz);
    crc[crc.length - 6] ^= 0xff;
    const isize = Buffer.from(gz);
    isize[isize.length - 2] ^= 0x01;
    const trailing = Buffer.concat([gz, Buffer.from("garbage after the gzip member")]);
    await Promise.all([
      expectConvertFails("mid.tar.gz", mid),
      expectConvertFails("crc.tar.gz", crc),
      expectConvertFails("isize.tar.gz", isize),
      expectConvertFails("trailing.tar.gz", trailing),
    ]);
  });

  it("a truncated plain tar (inside a header, inside a body)", async () => {
    // good.tar: [hdr etc/conf][body][hdr lib/big][body 3500 -> 3584][hdr lib/other]...
    const cuts = [100, 512 + 5, 1024 + 300, 1536 + 1000, 1536 + 512 + 3584 + 200];
    await Promise.all(cuts.map((c) => expectConvertFails(`cut${c}.tar`, tar.subarray(0, c))));
  });

  it("an eStargz blob given as input is converted (it is a valid tar.gz) — sanity", async () => {
    const [, , out] = setup("x", Buffer.alloc(0));
    const r = await run(["convert", blobPath, out]);
    expect(r.code, r.stderr).toBe(0);
    const again = await LayerReader.open(new BufferRangeSource(readFileSync(out)));
    expect(Buffer.from(await again.read("lib/big"))).toEqual(BIG);
  });

  it("gzip-compressed garbage (valid gzip, not a tar)", async () => {
    await Promise.all([
      expectConvertFails("random.gz", gzipSync(content(11, 3000))),
      expectConvertFails("text.gz", gzipSync(Buffer.from("just some text\n"))),
    ]);
  });

  // EISDIR is reported with the input's name: "seekable: IN: is a directory".
  it("an output path that is an existing directory is named as the culprit", async () => {
    const dir = join(root, "outisdir");
    mkdirSync(join(dir, "target"), { recursive: true });
    const r = await run(["convert", join(root, "good.tar"), join(dir, "target")]);
    expectFailure(r, join(dir, "target"));
    expect(r.stderr).not.toContain("good.tar");
    expect(readdirSync(dir)).toEqual(["target"]);
    expect(readdirSync(join(dir, "target"))).toEqual([]);
  });

  it("a missing input file", async () => {
    const dir = join(root, "missing");
    mkdirSync(dir);
    const r = await run(["convert", join(dir, "nope.tar"), join(dir, "o.esgz")]);
    expectFailure(r, join(dir, "nope.tar"));
    expect(readdirSync(dir)).toEqual([]);
  });

  it("an input that is a directory", async () => {
    const dir = join(root, "isdir");
    mkdirSync(join(dir, "in.tar"), { recursive: true });
    const r = await run(["convert", join(dir, "in.tar"), join(dir, "o.esgz")]);
    expectFailure(r, join(dir, "in.tar"));
  });

  it("an output in a missing directory", async () => {
    const out = join(root, "no", "such", "dir", "o.esgz");
    const r = await run(["convert", join(root, "good.tar"), out]);
    expectFailure(r, join(root, "no", "such", "dir"));
  });

  it("bad stdin input", async () => {
    const dir = join(root, "stdin-bad");
    mkdirSync(dir);
    const r = await run(["convert", "-", join(dir, "o.esgz")], Buffer.from("not a tar"));
    expectFailure(r);
    expect(readdirSync(dir)).toEqual([]);
    const r2 = await run(["convert", "-", "-"], gzipSync(tar).subarray(0, 30));
    expectFailure(r2);
  });

  // main.ts names program.args[1], which is the first option when options come first.
  it("the input is named when options come before it", async () => {
    const [inPath, outDir, out] = setup("junk.bin", content(5, 2000));
    const r = await run(["convert", "--chunk-size", "1000", inPath, out]);
    expectFailure(r, inPath);
    expect(r.stderr).not.toMatch(/^seekable: --chunk-size/);
    expect(readdirSync(outDir)).toEqual([]);
    const wrong = `sha256:${"0".repeat(64)}`;
    const c = await run(["cat", "--toc-digest", wrong, blobPath, "etc/conf"]);
    expectFailure(c, blobPath);
    expect(c.stdout.length).toBe(0);
  });
});

/** A blob: a first member with some bytes, then the given TOC member, then the footer. */
function handBlob(tocMember: Buffer): Buffer {
  const first = gzipMember(Buffer.alloc(1024), 6);
  return Buffer.concat([first, tocMember, encodeFooter(first.length)]);
}

function tocTar(json: Buffer, name = "stargz.index.json"): Buffer {
  const h = emptyHeader(toByteString(name), "0");
  h.size = json.length;
  return Buffer.concat([encodeHeader(h), json, Buffer.alloc(padding(json.length) + 1024)]);
}

/** verify, ls, toc and cat of a bad blob: each exits 1 naming the blob, stdout empty. */
async function expectBlobFails(name: string, data: Buffer, catPath = "x"): Promise<RunResult[]> {
  const [path] = setup(name, data);
  const rs = await Promise.all([
    run(["verify", path]),
    run(["ls", path]),
    run(["toc", path]),
    run(["cat", path, catPath]),
  ]);
  for (const r of rs) {
    expectFailure(r, path);
    expect(r.stdout.length).toBe(0);
  }
  return rs;
}

describe("reading commands: bad blobs exit 1 with one line naming the blob", () => {
  it("a blob with a bad footer", async () => {
    const b = Buffer.from(blob);
    b[b.length - 51 + 33] = 0x59; // STARGZ -> SYARGZ
    await expectBlobFails("badfooter.esgz", b);
  });

  it("a truncated blob, random bytes, an empty file, a plain tar", async () => {
    await Promise.all([
      expectBlobFails("half.esgz", blob.subarray(0, Math.floor(blob.length / 2))),
      expectBlobFails("random.esgz", content(3, 5000)),
      expectBlobFails("empty.esgz", Buffer.alloc(0)),
      expectBlobFails("plain.tar", tar),
    ]);
  });

  it("a TOC offset pointing past the TOC", async () => {
    const b = Buffer.from(blob);
    b.set(encodeFooter(b.length - 10), b.length - 51);
    await expectBlobFails("tocoff.esgz", b);
  });

  it("a TOC member that is not gzip", async () => {
    await expectBlobFails(
      "notgzip.esgz",
      handBlob(Buffer.from("this is not a gzip member at all".repeat(4))),
    );
  });

  it("a TOC member whose tar entry is not stargz.index.json", async () => {
    const json = serializeToc({ version: 1, entries: [] });
    await expectBlobFails("tocname.esgz", handBlob(gzipMember(tocTar(json, "other.json"), 6)));
  });

  it("a TOC that is not JSON", async () => {
    await expectBlobFails(
      "notjson.esgz",
      handBlob(gzipMember(tocTar(Buffer.from("{not json")), 6)),
    );
  });

  it("a TOC with a chunk offset out of range", async () => {
    const data = Buffer.from("0123456789");
    const toc: Toc = {
      version: 1,
      entries: [
        {
          name: "x",
          type: "reg",
          size: 10,
          offset: 99_999_999,
          digest: sha(data),
          chunkDigest: sha(data),
        },
      ],
    };
    await expectBlobFails("chunkoff.esgz", handBlob(gzipMember(tocTar(serializeToc(toc)), 6)));
  });

  it("a TOC whose chunk claims more bytes than its member holds", async () => {
    const data = Buffer.alloc(5000, 1);
    const first = gzipMember(Buffer.alloc(512), 6);
    const payload = gzipMember(Buffer.alloc(100, 1), 6);
    const toc: Toc = {
      version: 1,
      entries: [
        {
          name: "x",
          type: "reg",
          size: 5000,
          offset: first.length,
          digest: sha(data),
          chunkDigest: sha(data),
        },
      ],
    };
    const tocMember = gzipMember(tocTar(serializeToc(toc)), 6);
    const b = Buffer.concat([
      first,
      payload,
      tocMember,
      encodeFooter(first.length + payload.length),
    ]);
    const [path] = setup("short.esgz", b);
    const [v, c] = await Promise.all([run(["verify", path]), run(["cat", path, "x"])]);
    expectFailure(v, path);
    expectFailure(c, path);
    expect(c.stdout.length).toBe(0);
  });

  it("--toc-digest mismatch", async () => {
    const wrong = `sha256:${"0".repeat(64)}`;
    const [v, c] = await Promise.all([
      run(["verify", blobPath, "--toc-digest", wrong]),
      run(["cat", blobPath, "etc/conf", "--toc-digest", wrong]),
    ]);
    expectFailure(v, blobPath);
    expectFailure(c, blobPath);
    expect(c.stdout.length).toBe(0);
  });

  it("a missing blob", async () => {
    const p = join(root, "nope.esgz");
    const rs = await Promise.all([
      run(["verify", p]),
      run(["cat", p, "a"]),
      run(["toc", p]),
      run(["ls", p]),
    ]);
    for (const r of rs) expectFailure(r, p);
  });

  it("cat or ls of a path that is not in the layer", async () => {
    const [c, l, d] = await Promise.all([
      run(["cat", blobPath, "etc/conf", "no/such/file"]),
      run(["ls", blobPath, "no/such/file"]),
      run(["cat", blobPath, "etc"]),
    ]);
    expectFailure(c, "no/such/file");
    // Nothing is written when a later path is missing: paths are checked first.
    expect(c.stdout.length).toBe(0);
    expectFailure(l, "no/such/file");
    expectFailure(d, "etc");
  });
});

describe("a chunk whose bytes do not match its digest", () => {
  /** Copies the good blob and corrupts chunk `k` of lib/big; `fixCrc` keeps the gzip valid. */
  async function corrupt(k: number, fixCrc: boolean): Promise<string> {
    const r = await LayerReader.open(new BufferRangeSource(blob));
    const c = (r.lookup("lib/big")?.chunks ?? [])[k];
    const b = Buffer.from(blob);
    const member = b.subarray(c.offset, c.nextOffset);
    const plain = gunzipSync(member);
    const chunk = BIG.subarray(c.chunkOffset, c.chunkOffset + c.chunkSize);
    expect(plain.subarray(0, chunk.length)).toEqual(chunk);
    if (fixCrc) {
      // Random data is stored, not compressed: flip a payload byte and fix the member's CRC,
      // so only the chunk digest can catch it.
      const at = member.indexOf(chunk.subarray(100, 140));
      expect(at, "chunk bytes are stored raw in the member").toBeGreaterThan(0);
      member[at + 10] ^= 0x01;
      plain[100 + 10] ^= 0x01;
      member.writeUInt32LE(crc32(plain) >>> 0, member.length - 8);
      expect(gunzipSync(member)).toEqual(plain);
    } else {
      member[Math.floor(member.length / 2)] ^= 0xff;
    }
    const [path] = setup(`corrupt${k}${fixCrc ? "crc" : "raw"}.esgz`, b);
    return path;
  }

  it("verify and cat fail; cat writes only verified bytes; other files still read", async () => {
    for (const fixCrc of [true, false]) {
      // Chunks 0-2 are whole 1000-byte members of random data (stored); 3 is the short last one.
      for (const k of fixCrc ? [0, 2] : [1, 3]) {
        const path = await corrupt(k, fixCrc);
        const [v, c, other] = await Promise.all([
          run(["verify", path]),
          run(["cat", path, "lib/big"]),
          run(["cat", path, "etc/conf", "lib/other"]),
        ]);
        expectFailure(v, path);
        if (fixCrc) expect(v.stderr).toMatch(/digest/);
        expect(v.stdout.length).toBe(0);
        expectFailure(c, path);
        // Only whole verified chunks before the bad one may have been written.
        expect(c.stdout.length).toBeLessThanOrEqual(k * 1000);
        expect(c.stdout).toEqual(BIG.subarray(0, c.stdout.length));
        expect(other.code, other.stderr).toBe(0);
        expect(other.stdout).toEqual(Buffer.concat([CONF, content(8, 1500)]));
        expect(basename(path)).toMatch(/^corrupt/);
      }
    }
  });
});

describe("usage errors exit 2", () => {
  it("unknown option, missing argument, bad numbers, unknown command", async () => {
    const good = join(root, "good.tar");
    const cases = [
      ["convert", "--bogus", good, "o"],
      ["convert", good],
      ["convert"],
      ["convert", good, join(root, "o1"), "--level", "12"],
      ["convert", good, join(root, "o2"), "--level", "0"],
      ["convert", good, join(root, "o3"), "--chunk-size", "0"],
      ["convert", good, join(root, "o4"), "--chunk-size", "1.5"],
      ["convert", good, join(root, "o5"), "--threads", "x"],
      ["cat", blobPath],
      ["verify"],
      ["frobnicate"],
      // Parsed by commander (was by hand, exit 1): refused before anything is mounted.
      ["store", root, "--release-after", "0"],
      ["store", root, "--release-after", "soon"],
    ];
    const rs = await Promise.all(cases.map((a) => run(a)));
    rs.forEach((r, i) => {
      expectUsage(r);
      expect(r.stdout.length, cases[i].join(" ")).toBe(0);
    });
    expect(rs.at(-1)?.stderr).toMatch(
      /^seekable: option '--release-after <seconds>' argument 'soon' is invalid\. --release-after must be a positive number of seconds\n$/,
    );
    expect(readdirSync(root).filter((f) => /^o\d$/.test(f) || f.includes(".seekable-"))).toEqual(
      [],
    );
  });

  it("--help exits 0", async () => {
    const r = await run(["convert", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain("--chunk-size");
  });
});
