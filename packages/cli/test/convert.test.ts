import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { BufferRangeSource, LayerReader } from "@seekable/format";
import tarStream from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunResult, run as runProcess } from "../../../test/helpers/run.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let root: string;
/** TMPDIR of the child: must be empty after every run (no spool left behind). */
let childTmp: string;

/** Runs the built CLI with its own TMPDIR (checked for leftovers). */
function run(args: string[], stdin?: Buffer, timeoutMs = 20_000): Promise<RunResult> {
  return runProcess(process.execPath, [CLI, ...args], {
    input: stdin,
    env: { ...process.env, TMPDIR: childTmp },
    timeoutMs,
  });
}

function ok(r: RunResult): RunResult {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(0);
  expect(readdirSync(childTmp)).toEqual([]);
  return r;
}

function content(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

interface Ent {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  data?: Buffer;
  linkname?: string;
}

async function packTar(ents: Ent[]): Promise<Buffer> {
  const p = tarStream.pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => p.on("end", r));
  for (const e of ents) {
    const type = e.type ?? "file";
    await new Promise<void>((res, rej) =>
      p.entry(
        {
          name: e.name,
          type,
          linkname: e.linkname,
          mode: type === "directory" ? 0o755 : 0o644,
          mtime: new Date(1700000000000),
          uid: 1000,
          gid: 1000,
          uname: "user",
          gname: "group",
        },
        type === "file" ? (e.data ?? Buffer.alloc(0)) : undefined,
        (err) => (err ? rej(err) : res()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const FILES: Ent[] = [
  { name: "./", type: "directory" },
  { name: "./bin/", type: "directory" },
  { name: "./bin/tool", data: content(1, 2500) },
  { name: "./bin/exact", data: content(2, 1000) },
  { name: "./bin/link", type: "link", linkname: "./bin/tool" },
  { name: "./etc/", type: "directory" },
  { name: "./etc/conf", data: Buffer.from("key=value\n") },
  { name: "./etc/empty", data: Buffer.alloc(0) },
  { name: "./etc/sym", type: "symlink", linkname: "conf" },
  { name: "./lib/", type: "directory" },
  { name: "./lib/big", data: content(3, 3500) },
];

let tarPath: string;
let tarBytes: Buffer;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "seekable-cli-"));
  childTmp = join(root, "tmp");
  mkdirSync(childTmp);
  tarBytes = await packTar(FILES);
  tarPath = join(root, "layer.tar");
  writeFileSync(tarPath, tarBytes);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function outDir(name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

describe("seekable convert and the reading commands", () => {
  let blobPath: string;
  let report: Record<string, unknown>;

  beforeAll(async () => {
    blobPath = join(outDir("basic"), "layer.esgz");
    const r = ok(await run(["convert", tarPath, blobPath, "--chunk-size", "1000", "--json"]));
    report = JSON.parse(r.stdout.toString());
  });

  it("--json reports digest, size, diffID, tocDigest, uncompressedSize that match the blob", () => {
    const blob = readFileSync(blobPath);
    expect(report.digest).toBe(sha(blob));
    expect(report.size).toBe(blob.length);
    const raw = gunzipSync(blob);
    expect(report.diffID).toBe(sha(raw));
    expect(report.uncompressedSize).toBe(raw.length);
    expect(readdirSync(join(root, "basic"))).toEqual(["layer.esgz"]);
  });

  it("toc prints bytes whose sha256 is the tocDigest", async () => {
    const r = ok(await run(["toc", blobPath]));
    expect(sha(r.stdout)).toBe(report.tocDigest);
    const toc = JSON.parse(r.stdout.toString());
    expect(toc.version).toBe(1);
    expect(toc.entries[0].name).toBe(".no.prefetch.landmark");
  });

  it("verify succeeds, with and without the right --toc-digest", async () => {
    const a = ok(await run(["verify", blobPath, "--json"]));
    const v = JSON.parse(a.stdout.toString());
    expect(v.ok).toBe(true);
    expect(v.tocDigest).toBe(report.tocDigest);
    ok(await run(["verify", "--toc-digest", String(report.tocDigest), blobPath]));
  });

  it("cat writes the files in order; hardlinks give the target's content", async () => {
    const r = ok(await run(["cat", blobPath, "bin/tool", "/etc/conf", "./bin/link", "etc/empty"]));
    expect(r.stdout).toEqual(
      Buffer.concat([content(1, 2500), Buffer.from("key=value\n"), content(1, 2500)]),
    );
  });

  it("ls --json lists every entry with its metadata", async () => {
    const r = ok(await run(["ls", blobPath, "--json"]));
    const list = JSON.parse(r.stdout.toString()) as Record<string, unknown>[];
    const by = (n: string) => list.find((e) => e.name === n) as Record<string, unknown>;
    expect(by("bin/tool")).toMatchObject({
      type: "reg",
      size: 2500,
      mode: 0o644,
      uid: 1000,
      gid: 1000,
      userName: "user",
      groupName: "group",
      modtime: "2023-11-14T22:13:20Z",
    });
    expect(by("etc/sym")).toMatchObject({ type: "symlink", linkName: "conf" });
    expect(by("bin/link")).toMatchObject({ type: "hardlink" });
    const dir = ok(await run(["ls", blobPath, "etc", "--json"]));
    expect(
      (JSON.parse(dir.stdout.toString()) as { name: string }[]).map((e) => e.name).sort(),
    ).toEqual(["etc/conf", "etc/empty", "etc/sym"]);
    const human = ok(await run(["ls", blobPath]));
    expect(human.stdout.toString()).toContain("bin/tool");
  });

  it("the TOC follows the reference's chunk rules", async () => {
    const r = await LayerReader.open(new BufferRangeSource(readFileSync(blobPath)));
    const ents = (n: string) => r.toc.entries.filter((e) => e.name === n);
    expect(ents("./bin/exact").map((e) => e.chunkSize)).toEqual([1000]); // exactly one chunk
    expect(ents("./bin/tool").map((e) => e.chunkSize)).toEqual([1000, 1000, undefined]);
    expect(ents("./lib/big").map((e) => [e.type, e.chunkOffset])).toEqual([
      ["reg", undefined],
      ["chunk", 1000],
      ["chunk", 2000],
      ["chunk", 3000],
    ]);
    const empty = ents("./etc/empty")[0];
    expect(empty.digest).toBe(sha(Buffer.alloc(0)));
    expect(empty.offset).toBeUndefined();
    expect(empty.chunkDigest).toBeUndefined();
  });

  it("stdin input and stdout output give the same bytes as files", async () => {
    const expected = readFileSync(blobPath);
    const a = ok(await run(["convert", "-", "-", "--chunk-size", "1000"], tarBytes));
    expect(sha(a.stdout)).toBe(sha(expected));
    // The report goes to stderr when the blob is on stdout.
    expect(a.stderr).toContain(String(report.tocDigest));
    const b = ok(await run(["convert", tarPath, "-", "--chunk-size", "1000"]));
    expect(sha(b.stdout)).toBe(sha(expected));
    const out = join(outDir("stdin"), "o.esgz");
    ok(await run(["convert", "-", out, "--chunk-size", "1000"], tarBytes));
    expect(sha(readFileSync(out))).toBe(sha(expected));
    // A gzip-compressed layer on stdin is sniffed too.
    const c = ok(await run(["convert", "-", "-", "--chunk-size", "1000"], gzipSync(tarBytes)));
    expect(sha(c.stdout)).toBe(sha(expected));
  });

  it("output is identical for --threads 1 and 4 and across runs", async () => {
    const d = outDir("threads");
    const outs = [join(d, "t1"), join(d, "t4"), join(d, "t4b")];
    ok(await run(["convert", tarPath, outs[0], "--chunk-size", "1000", "--threads", "1"]));
    ok(await run(["convert", tarPath, outs[1], "--chunk-size", "1000", "--threads", "4"]));
    ok(await run(["convert", tarPath, outs[2], "--chunk-size", "1000", "--threads", "4"]));
    const digests = outs.map((o) => sha(readFileSync(o)));
    expect(new Set(digests).size).toBe(1);
    expect(digests[0]).toBe(sha(readFileSync(blobPath)));
  });
});

describe("seekable convert --prioritized-files", () => {
  it("puts the listed files (with parents and hardlink targets) first, then .prefetch.landmark", async () => {
    const d = outDir("prio");
    const list = join(d, "list.txt");
    writeFileSync(list, "bin/link\r\n\n/etc/conf\n");
    const out = join(d, "o.esgz");
    ok(await run(["convert", tarPath, out, "--prioritized-files", list]));
    const r = await LayerReader.open(new BufferRangeSource(readFileSync(out)));
    const names = r.toc.entries.filter((e) => e.type !== "chunk").map((e) => e.name);
    expect(names).toEqual([
      "./",
      "./bin/",
      "./bin/tool",
      "./bin/link",
      "./etc/",
      "./etc/conf",
      ".prefetch.landmark",
      "./bin/exact",
      "./etc/empty",
      "./etc/sym",
      "./lib/",
      "./lib/big",
    ]);
    await r.verify();
  });

  it("a missing prioritized path fails with exit 1 naming it; --allow-missing-prioritized warns", async () => {
    const d = outDir("prio-missing");
    const list = join(d, "list.txt");
    writeFileSync(list, "etc/conf\nno/such/file\n");
    const out = join(d, "o.esgz");
    const bad = await run(["convert", tarPath, out, "--prioritized-files", list]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^seekable: [^\n]*no\/such\/file[^\n]*\n$/);
    expect(readdirSync(d)).toEqual(["list.txt"]);
    const good = ok(
      await run([
        "convert",
        tarPath,
        out,
        "--prioritized-files",
        list,
        "--allow-missing-prioritized",
      ]),
    );
    expect(good.stderr).toMatch(/warning[^\n]*no\/such\/file/);
    const r = await LayerReader.open(new BufferRangeSource(readFileSync(out)));
    const names = r.toc.entries.filter((e) => e.type !== "chunk").map((e) => e.name);
    expect(names.slice(0, 4)).toEqual(["./", "./etc/", "./etc/conf", ".prefetch.landmark"]);
  });

  it("prioritized conversion from stdin gives the same bytes as from a file", async () => {
    const d = outDir("prio-stdin");
    const list = join(d, "list.txt");
    writeFileSync(list, "lib/big\n");
    const a = ok(await run(["convert", tarPath, "-", "--prioritized-files", list]));
    const b = ok(await run(["convert", "-", "-", "--prioritized-files", list], tarBytes));
    expect(sha(b.stdout)).toBe(sha(a.stdout));
  });
});

describe("empty layers", () => {
  // `tar -cf x.tar -T /dev/null` writes only end-of-archive zero blocks; Docker's well-known
  // empty layer is such a tar, gzipped. The reference's Build accepts both (no entries: the
  // blob holds just .no.prefetch.landmark). seekable's sniff() rejects the plain one as
  // "not a tar or tar.gz" while it accepts the same bytes gzipped.
  it("an empty tar archive converts to a layer holding only the landmark, plain or gzipped", async () => {
    const d = outDir("empty-layer");
    const plain = Buffer.alloc(10240);
    const inputs: [string, Buffer][] = [
      ["empty.tar.gz", gzipSync(plain)],
      ["empty.tar", plain],
    ];
    for (const [name, data] of inputs) {
      const inPath = join(d, name);
      writeFileSync(inPath, data);
      const out = join(d, `${name}.esgz`);
      ok(await run(["convert", inPath, out]));
      const r = await LayerReader.open(new BufferRangeSource(readFileSync(out)));
      expect(r.toc.entries.map((e) => e.name)).toEqual([".no.prefetch.landmark"]);
    }
  });
});

describe("duplicates and reserved names through the CLI", () => {
  it("the last copy of a duplicate wins; stargz.index.json and landmarks in the input are dropped", async () => {
    const tar = await packTar([
      { name: "a", data: Buffer.from("one") },
      { name: "stargz.index.json", data: Buffer.from("{}") },
      { name: "b", data: Buffer.from("b") },
      { name: ".no.prefetch.landmark", data: Buffer.from([0x0f]) },
      { name: "./a", data: Buffer.from("two") },
    ]);
    const d = outDir("dups");
    const inPath = join(d, "in.tar");
    writeFileSync(inPath, tar);
    const out = join(d, "o.esgz");
    ok(await run(["convert", inPath, out]));
    const r = await LayerReader.open(new BufferRangeSource(readFileSync(out)));
    expect(r.toc.entries.map((e) => e.name)).toEqual([".no.prefetch.landmark", "b", "./a"]);
    const cat = ok(await run(["cat", out, "a"]));
    expect(cat.stdout.toString()).toBe("two");
    // Through stdout (no resettable sink) too.
    const s = ok(await run(["convert", inPath, "-"]));
    expect(sha(s.stdout)).toBe(sha(readFileSync(out)));
  });
});
