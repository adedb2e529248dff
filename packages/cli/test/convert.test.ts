import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import {
  closeSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { BufferRangeSource, FOOTER_SIZE, LayerReader, parseFooter } from "@seekable/format";
import { type RunResult, run as runProcess } from "@seekable/test-kit/run.js";
import { makeTar } from "@seekable/test-kit/tar.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

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

const packTar = (ents: Ent[]): Promise<Buffer> =>
  makeTar(
    ents.map((e) => {
      const type = e.type ?? "file";
      return {
        name: e.name,
        type,
        body: type === "file" ? (e.data ?? Buffer.alloc(0)) : undefined,
        linkname: e.linkname,
        mtime: new Date(1700000000000),
        uid: 1000,
        gid: 1000,
        uname: "user",
        gname: "group",
      };
    }),
  );

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

/** Runs the CLI with stdin read from a file or stdout written to one (redirections). */
async function runFds(
  args: string[],
  files: { stdin?: string; stdout?: string },
): Promise<RunResult> {
  const inFd = files.stdin ? openSync(files.stdin, "r") : "ignore";
  const outFd = files.stdout ? openSync(files.stdout, "w") : "ignore";
  try {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, TMPDIR: childTmp },
      stdio: [inFd, outFd, "pipe"],
      timeout: 20_000,
    });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
    return { command: args.join(" "), code, signal, stdout: Buffer.alloc(0), stderr, ms: 0 };
  } finally {
    if (typeof inFd === "number") closeSync(inFd);
    if (typeof outFd === "number") closeSync(outFd);
  }
}

/** The TOC's entry names, read directly: the reader is not what these tests exercise. */
function tocNames(blob: Buffer): string[] {
  const { tocOffset } = parseFooter(blob);
  const tar = gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER_SIZE));
  const size = Number.parseInt(tar.toString("latin1", 124, 136).replace(/\0.*$/s, ""), 8);
  const toc = JSON.parse(tar.toString("utf8", 512, 512 + size)) as { entries: { name: string }[] };
  return toc.entries.map((e) => e.name);
}

/** Exit 1, one line "seekable: …" with each of `names`, no stack, no spool left in TMPDIR. */
function fails(r: RunResult, ...names: string[]): RunResult {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^seekable: [^\n]+\n$/);
  expect(r.stderr).not.toMatch(/\n\s+at |Unhandled|Error: /);
  for (const n of names) expect(r.stderr).toContain(n);
  expect(readdirSync(childTmp)).toEqual([]);
  return r;
}

describe("inputs convert refuses, and inputs it accepts like GNU tar and Go", () => {
  it("convert X X is refused, also through another path and a hardlink; the input is untouched", async () => {
    const d = outDir("same-file");
    const x = join(d, "x.tar");
    writeFileSync(x, tarBytes);
    linkSync(x, join(d, "hard.tar"));
    mkdirSync(join(d, "sub"));
    for (const out of [x, join(d, "sub", "..", "x.tar"), join(d, "hard.tar")]) {
      const r = fails(await run(["convert", x, out]), out, "is the input");
      expect(r.stderr.startsWith(`seekable: ${out}: `)).toBe(true);
    }
    // stdin redirected from the output file (`convert - x.tar < x.tar`).
    fails(await runFds(["convert", "-", x], { stdin: x }), x, "is the input");
    expect(sha(readFileSync(x))).toBe(sha(tarBytes));
    expect(readdirSync(d).sort()).toEqual(["hard.tar", "sub", "x.tar"]);
  });

  it("data after the end-of-archive marker is ignored, plain or gzipped, as GNU tar and Go do", async () => {
    const d = outDir("trailing");
    const clean = join(d, "clean.esgz");
    writeFileSync(join(d, "clean.tar"), tarBytes);
    ok(await run(["convert", join(d, "clean.tar"), clean]));
    const inputs: [string, Buffer][] = [
      ["garbage.tar", Buffer.concat([tarBytes, content(9, 3000)])],
      ["short.tar", Buffer.concat([tarBytes, Buffer.from("not a tar block\n")])],
      ["garbage.tar.gz", gzipSync(Buffer.concat([tarBytes, content(10, 5000)]))],
    ];
    for (const [name, data] of inputs) {
      writeFileSync(join(d, name), data);
      const out = join(d, `${name}.esgz`);
      ok(await run(["convert", join(d, name), out]));
      expect(sha(readFileSync(out)), name).toBe(sha(readFileSync(clean)));
    }
  });

  it("a hardlink to a directory is refused, naming the entry, with and without prioritized files", async () => {
    const d = outDir("hardlink-dir");
    const inPath = join(d, "in.tar");
    writeFileSync(
      inPath,
      await packTar([
        { name: "d/", type: "directory" },
        { name: "d/f", data: Buffer.from("hi") },
        { name: "d/loop", type: "link", linkname: "d" },
      ]),
    );
    const list = join(d, "list");
    writeFileSync(list, "d/f\n");
    const out = join(d, "o.esgz");
    for (const extra of [[], ["--prioritized-files", list]]) {
      fails(await run(["convert", ...extra, inPath, out]), inPath, '"d/loop"', "directory");
    }
    fails(await run(["convert", inPath, "-"]), '"d/loop"');
    expect(readdirSync(d).sort()).toEqual(["in.tar", "list"]);
  });

  it("a 100,000-component path converts and can be prioritized; a 6,000-link hardlink chain is no loop; messages stay one short line", async () => {
    const d = outDir("deep");
    const deep = `${Array(100_000).fill("a").join("/")}/f`;
    const chain: Ent[] = [{ name: "l0", data: Buffer.from("hello") }];
    for (let i = 1; i < 6000; i++)
      chain.push({ name: `l${i}`, type: "link", linkname: `l${i - 1}` });
    const inPath = join(d, "in.tar");
    writeFileSync(inPath, await packTar([{ name: deep, data: Buffer.from("deep") }, ...chain]));
    const list = join(d, "list");
    writeFileSync(list, `l5999\n${deep}\n`);
    const out = join(d, "o.esgz");
    ok(await run(["convert", "--prioritized-files", list, inPath, out]));
    const names = tocNames(readFileSync(out));
    expect(names.indexOf(".prefetch.landmark")).toBe(6001);
    expect(names.slice(0, 2)).toEqual(["l0", "l1"]);
    expect(names[6000]).toBe(deep);
    // A missing deep path: one line, not a 200 KB one.
    writeFileSync(list, `x/${deep}\n`);
    const bad = fails(
      await run(["convert", "--prioritized-files", list, inPath, out]),
      "not in the layer",
    );
    expect(bad.stderr.length).toBeLessThan(1000);
  });
});

describe("output and temporary-space failures: one line, exit 1, nothing left behind", () => {
  // Real faults: a 1 MiB tmpfs (ENOSPC), a read-only tmpfs, a full-device node (as /dev/full:
  // char 1,7), a pipe closed by its reader. Needs root for mount and mknod.
  let small: string;
  let readOnly: string;
  let full: string;
  let bigTar: string;
  const mounted: string[] = [];

  beforeAll(() => {
    const d = outDir("faults");
    small = join(d, "small");
    readOnly = join(d, "ro");
    mkdirSync(small);
    mkdirSync(readOnly);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]);
    mounted.push(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", readOnly]);
    mounted.push(readOnly);
    full = join(d, "full");
    execFileSync("mknod", [full, "c", "1", "7"]);
    bigTar = join(d, "big.tar");
    return packTar([
      { name: "big", data: content(20, 1_500_000) },
      { name: "small", data: content(21, 1000) },
    ]).then((b) => writeFileSync(bigTar, b));
  });
  afterAll(() => {
    for (const m of mounted) execFileSync("umount", [m]);
  });

  it("TMPDIR on a full file system with --prioritized-files: names the directory; no spool, no temp output", async () => {
    const d = outDir("enospc-tmp");
    const list = join(d, "list");
    writeFileSync(list, "big\n");
    const out = join(d, "o.esgz");
    const r = await runProcess(
      process.execPath,
      [CLI, "convert", "--prioritized-files", list, bigTar, out],
      {
        env: { ...process.env, TMPDIR: small },
        timeoutMs: 20_000,
      },
    );
    fails(r, small, "no space left on device");
    expect(readdirSync(small)).toEqual([]);
    expect(readdirSync(d)).toEqual(["list"]);
  });

  it("an output on a full file system: names the output; no temporary file left", async () => {
    const out = join(small, "o.esgz");
    const r = fails(await run(["convert", bigTar, out]), "no space left on device");
    expect(r.stderr.startsWith(`seekable: ${out}: `), r.stderr).toBe(true);
    expect(readdirSync(small)).toEqual([]);
  });

  it("a read-only output directory: names the output", async () => {
    const out = join(readOnly, "o.esgz");
    const r = fails(await run(["convert", tarPath, out]), "read-only file system");
    expect(r.stderr.startsWith(`seekable: ${out}: `), r.stderr).toBe(true);
  });

  it("a vanished TMPDIR (prioritized files, stdin spool): names the directory", async () => {
    const gone = join(root, "vanished-tmp");
    const d = outDir("vanished");
    const list = join(d, "list");
    writeFileSync(list, "./bin/tool\n");
    const out = join(d, "o.esgz");
    const env = { ...process.env, TMPDIR: gone };
    const cases = [
      ["convert", "--prioritized-files", list, tarPath, out],
      ["convert", "-", out],
    ];
    for (const args of cases) {
      const r = await runProcess(process.execPath, [CLI, ...args], {
        env,
        input: tarBytes,
        timeoutMs: 20_000,
      });
      fails(r, gone, "no such file or directory");
    }
    expect(readdirSync(d)).toEqual(["list"]);
  });

  it("a full device as the output file: names it, and it stays a device (never renamed over)", async () => {
    const r = fails(await run(["convert", tarPath, full]), "no space left on device");
    expect(r.stderr.startsWith(`seekable: ${full}: `), r.stderr).toBe(true);
    expect(statSync(full).isCharacterDevice()).toBe(true);
    expect(readdirSync(dirname(full)).filter((n) => n.includes(".tmp"))).toEqual([]);
  });

  it("stdout on a full device (`convert IN - > /dev/full`): names stdout, exit 1", async () => {
    const r = fails(
      await runFds(["convert", tarPath, "-"], { stdout: full }),
      "no space left on device",
    );
    expect(r.stderr.startsWith("seekable: stdout: "), r.stderr).toBe(true);
  });

  it("stdout closed by its reader (`convert IN - | head -c 10`): names stdout, exit 1", async () => {
    const child = spawn(process.execPath, [CLI, "convert", bigTar, "-"], {
      env: { ...process.env, TMPDIR: childTmp },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 20_000,
    });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    // Read the first bytes, then close the pipe while the blob is still being written.
    await once(child.stdout, "data");
    child.stdout.destroy();
    const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
    fails(
      { command: "", code, signal, stdout: Buffer.alloc(0), stderr, ms: 0 },
      "stdout",
      "broken pipe",
    );
  });
});

describe("what is renamed into place is the blob reported", () => {
  it("a temporary output altered behind convert's back (a real concurrent writer) fails the re-hash: exit 1, no output", async () => {
    const d = outDir("tamper");
    const inPath = join(d, "in.tar");
    const files: Ent[] = [];
    for (let i = 0; i < 12; i++) files.push({ name: `f${i}`, data: content(40 + i, 2_000_000) });
    writeFileSync(inPath, await packTar(files));
    const outPath = join(d, "o.esgz");
    const conversion = run(["convert", inPath, outPath, "--json"], undefined, 60_000);
    // Once the temporary file has its first bytes, overwrite them (convert writes each
    // offset once, so nothing of convert's own restores them).
    let tampered = false;
    const deadline = Date.now() + 30_000;
    while (!tampered && Date.now() < deadline) {
      const tmp = readdirSync(d).find((n) => n.endsWith(".tmp"));
      if (tmp && statSync(join(d, tmp), { throwIfNoEntry: false })?.size) {
        const fd = openSync(join(d, tmp), "r+");
        writeSync(fd, Buffer.from("tampered"), 0, 8, 0);
        closeSync(fd);
        tampered = true;
      } else await new Promise((r) => setTimeout(r, 2));
    }
    expect(tampered, "saw the temporary file").toBe(true);
    fails(await conversion, outPath, "not the blob converted");
    expect(readdirSync(d)).toEqual(["in.tar"]);
  });
});
