// Real data: converts the ~259 MB corpus layer (tools/corpus/build-layer.sh: Go toolchain
// and sources, shared libraries, hard links, symlinks, node_modules) with the seekable CLI at
// default options and checks the result against the source tar, GNU tar, and the reference.
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { FileRangeSource, LayerReader } from "@seekable/format";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CORPUS = join(ROOT, ".work/corpus");
const LAYER_TAR = join(CORPUS, "layer.tar");
const LAYER_TGZ = join(CORPUS, "layer.tar.gz");
const CLI = join(ROOT, "packages/cli/dist/main.js");
const REFERENCE = join(ROOT, "tools/reference/bin/estargz-ref");
const OUT = join(ROOT, `.work/real-data.${process.pid}`);
const BLOB = join(OUT, "layer.esgz");
const BIG = 64 * 1024 * 1024;

interface Report {
  digest: string;
  size: number;
  diffID: string;
  tocDigest: string;
  uncompressedSize: number;
  entries: number;
  chunks: number;
}

interface SourceEntry {
  type: string;
  mode: number;
  size: number;
  linkname?: string;
  sha256?: string;
}

const seekable = (...args: string[]) =>
  run(process.execPath, [CLI, ...args], { maxBuffer: BIG, encoding: "utf8" });

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

const clean = (name: string) => name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");

/**
 * Importing @seekable/format patches tar-stream's shared `headers` module process-wide so
 * that PAX values decode as latin1 byte strings (see packages/format/src/tar-input.ts). Names
 * are read as byte strings here (filenameEncoding latin1) and turned into UTF-8 when they
 * are valid UTF-8, so the comparison holds with or without that patch.
 */
function utf8(s: string): string {
  if ([...s].some((c) => c.charCodeAt(0) > 0xff)) return s; // already decoded as UTF-8
  const bytes = Buffer.from(s, "latin1");
  const u = bytes.toString("utf8");
  return Buffer.from(u, "utf8").equals(bytes) ? u : s;
}

/** Every entry of the source tar, by cleaned name, with the sha256 of regular files. */
async function readSourceTar(path: string): Promise<Map<string, SourceEntry>> {
  const entries = new Map<string, SourceEntry>();
  // filenameEncoding is a tar-stream 3 option missing from @types/tar-stream.
  const extract = tar.extract({ filenameEncoding: "latin1" } as Parameters<typeof tar.extract>[0]);
  const done = pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), extract);
  for await (const entry of extract) {
    const h = entry.header;
    const e: SourceEntry = { type: h.type ?? "file", mode: h.mode ?? 0, size: h.size ?? 0 };
    if (h.linkname) e.linkname = h.type === "link" ? clean(utf8(h.linkname)) : utf8(h.linkname);
    const hash = createHash("sha256");
    for await (const chunk of entry) hash.update(chunk as Buffer);
    if (e.type === "file") e.sha256 = hash.digest("hex");
    entries.set(clean(utf8(h.name)), e);
  }
  await done;
  return entries;
}

let report: Report;
let source: Map<string, SourceEntry>;

beforeAll(async () => {
  // The corpus is cached in .work/corpus; building it takes ~15 s (plus pigz).
  await run(join(ROOT, "tools/corpus/build-layer.sh"), [], { maxBuffer: BIG });
  mkdirSync(OUT, { recursive: true });
  const [converted, parsed] = await Promise.all([
    seekable("convert", LAYER_TGZ, BLOB, "--json"),
    readSourceTar(LAYER_TAR),
  ]);
  report = JSON.parse(converted.stdout) as Report;
  source = parsed;
}, 300_000);

afterAll(() => {
  rmSync(OUT, { recursive: true, force: true });
});

describe("real-data corpus converted at default options", () => {
  it("passes seekable verify with its TOC digest", async () => {
    const { stdout } = await seekable("verify", BLOB, "--toc-digest", report.tocDigest, "--json");
    const v = JSON.parse(stdout);
    expect(v.ok).toBe(true);
    expect(v.tocDigestChecked).toBe(true);
    expect(v.chunks).toBe(report.chunks);
  });

  it("holds every source entry with the same type, mode, links and content", async () => {
    const src = await FileRangeSource.open(BLOB);
    try {
      const reader = await LayerReader.open(src, { tocDigest: report.tocDigest });
      let files = 0;
      let bytes = 0;
      for (const [name, want] of source) {
        const node = reader.lookup(name);
        expect(node, name).toBeDefined();
        if (!node) continue;
        expect(node.mode & 0o7777, `${name}: mode`).toBe(want.mode & 0o7777);
        switch (want.type) {
          case "directory":
            expect(node.type, name).toBe("dir");
            break;
          case "symlink":
            expect(node.type, name).toBe("symlink");
            expect(node.linkName, name).toBe(want.linkname);
            break;
          case "link": {
            expect(node.type, name).toBe("hardlink");
            expect(clean(node.linkName), name).toBe(want.linkname);
            const target = want.linkname ? source.get(want.linkname) : undefined;
            expect(reader.resolve(node).path, name).toBe(want.linkname);
            expect(sha256(await reader.read(name)), name).toBe(target?.sha256);
            break;
          }
          case "file": {
            expect(node.type, name).toBe("reg");
            expect(node.size, name).toBe(want.size);
            const data = await reader.read(name);
            expect(data.length, name).toBe(want.size);
            expect(sha256(data), name).toBe(want.sha256);
            files++;
            bytes += data.length;
            break;
          }
          default:
            throw new Error(`${name}: unexpected type ${want.type} in the corpus`);
        }
      }
      // Nothing but the landmark may appear in the TOC that the source does not have
      // (parents the tar does not list are implicit directories, with no TOC entry).
      const extra = [...reader.walk()]
        .filter((n) => n.entry !== undefined && n.path !== "" && !source.has(n.path))
        .map((n) => n.path);
      expect(extra.filter((p) => !/^\.(no\.)?prefetch\.landmark$/.test(p))).toEqual([]);
      expect(files).toBeGreaterThan(10_000);
      expect(bytes).toBeGreaterThan(200_000_000);
    } finally {
      await src.close();
    }
  }, 180_000);

  it("serves files through `seekable cat` byte for byte", async () => {
    const regular = [...source].filter(([, e]) => e.type === "file");
    // The largest files, small ones from across the layer, an empty file and hard links.
    const bySize = [...regular].sort((a, b) => b[1].size - a[1].size);
    const picks = [
      ...bySize.slice(0, 3),
      ...regular.filter((_, i) => i % 997 === 0),
      ...regular.filter(([, e]) => e.size === 0).slice(0, 1),
    ];
    const links = [...source].filter(([, e]) => e.type === "link").slice(0, 3);
    const names = [...picks, ...links].map(([n]) => n);
    const { stdout } = await run(process.execPath, [CLI, "cat", BLOB, ...names], {
      maxBuffer: 512 * 1024 * 1024,
      encoding: "buffer",
    });
    const want = Buffer.concat(
      await Promise.all(
        names.map(async (n) => {
          const src = await FileRangeSource.open(BLOB);
          try {
            return await (await LayerReader.open(src)).read(n);
          } finally {
            await src.close();
          }
        }),
      ),
    );
    const expected = names.map((n) => {
      const e = source.get(n);
      return e?.type === "link" ? source.get(e.linkname ?? "")?.size : e?.size;
    });
    expect(stdout.length).toBe(expected.reduce((a: number, b) => a + (b ?? 0), 0));
    expect(sha256(stdout)).toBe(sha256(want));
    // And each slice matches the source tar's digest.
    let off = 0;
    for (const n of names) {
      const e = source.get(n);
      const content = e?.type === "link" ? source.get(e.linkname ?? "") : e;
      const len = content?.size ?? 0;
      expect(sha256(stdout.subarray(off, off + len)), n).toBe(content?.sha256);
      off += len;
    }
  }, 120_000);

  it("gunzips to a valid tar whose sha256 is the reported diffID", async () => {
    const tarProc = spawn("tar", ["--quoting-style=literal", "-tf", "-"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let listing = "";
    let stderr = "";
    tarProc.stdout.setEncoding("utf8").on("data", (d: string) => {
      listing += d;
    });
    tarProc.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((res) => tarProc.on("close", res));
    const hash = createHash("sha256");
    let uncompressed = 0;
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        uncompressed += chunk.length;
        cb(null, chunk);
      },
    });
    await pipeline(
      createReadStream(BLOB, { highWaterMark: 1 << 20 }),
      createGunzip({ chunkSize: 1 << 20 }),
      tee,
      tarProc.stdin,
    );
    expect(await exited, stderr).toBe(0);
    expect(`sha256:${hash.digest("hex")}`).toBe(report.diffID);
    expect(uncompressed).toBe(report.uncompressedSize);
    const names = new Set(listing.split("\n").filter(Boolean).map(clean));
    expect(names.has("stargz.index.json")).toBe(true);
    for (const name of source.keys()) expect(names.has(name), name).toBe(true);
  }, 120_000);

  it("gives the same blob from the uncompressed tar with one thread (deterministic)", async () => {
    const again = join(OUT, "again.esgz");
    const { stdout } = await seekable("convert", LAYER_TAR, again, "--threads", "1", "--json");
    const r = JSON.parse(stdout) as Report;
    rmSync(again, { force: true });
    expect(r.digest).toBe(report.digest);
    expect(r.tocDigest).toBe(report.tocDigest);
  }, 180_000);

  it("is accepted by the reference reader with every file identical", async (ctx) => {
    if (!existsSync(REFERENCE) && existsSync(join(ROOT, "tools/reference/build.sh"))) {
      await run(join(ROOT, "tools/reference/build.sh"), [], { maxBuffer: BIG }).catch(() => {});
    }
    if (!existsSync(REFERENCE)) ctx.skip();
    const args = ["check", BLOB, "-toc-digest", report.tocDigest, "-tar", LAYER_TAR];
    const res = await run(REFERENCE, [...args, "-diff-id", report.diffID], {
      maxBuffer: BIG,
      encoding: "utf8",
    }).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`estargz-ref check failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
    });
    const summary = JSON.parse(res.stdout.trim().split("\n").pop() ?? "{}");
    expect(summary.ok).toBe(true);
  }, 180_000);
});
