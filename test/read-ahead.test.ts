// Neighbour read-ahead through `seekable mount` (real FUSE as root, real registry behind the
// fault proxy): a start-like workload (many small files of a directory opened and read one by
// one) costs far fewer requests than files while bytes stay within 1.2x the lower bound; a
// corrupted neighbour is never served; a slow registry that refuses multi-range still works;
// concurrent misses do not wait for one another.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FileRangeSource, LayerReader } from "@seekable/format";
import { RegistryClient, type Repository } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

const missing = [
  process.getuid?.() === 0 ? "" : "root",
  existsSync("/dev/fuse") ? "" : "/dev/fuse",
].filter((m) => m !== "");

/** Source-like text: compresses about as well as real code does. */
function text(n: number, seed: number): Buffer {
  const words = ["import", "def", "return", "self", "value", "class", "for", "in", "if", "None"];
  const out: string[] = [];
  let len = 0;
  let x = seed * 7919 + 1;
  while (len < n) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const w = `${words[x % words.length]}${x % 97} `;
    out.push(x % 11 === 0 ? `${w}\n` : w);
    len += w.length;
  }
  return Buffer.from(out.join("").slice(0, n));
}

// The image: a package directory of small modules with a huge data file in the middle of it
// (sorted names put it between mod-23 and mod-24), and many other directories (a realistic
// TOC, most of it never read).
const MODULES = 48;
const modules: string[] = [];
const items: TarItem[] = [{ name: "app/" }, { name: "app/pkg/" }];
for (let i = 0; i < MODULES; i++) {
  const name = `app/pkg/mod-${String(i).padStart(2, "0")}.py`;
  modules.push(name);
  items.push({ name, body: text(2000 + ((i * 977) % 5000), i) });
  if (i === 23) items.push({ name: "app/pkg/mod-23-data.bin", body: pseudoRandom(3 << 20, 5) });
}
const SPREAD = 8; // directories for the concurrency test, one file of each read at once
for (let d = 0; d < SPREAD; d++) {
  items.push({ name: `spread-${d}/` });
  items.push({ name: `spread-${d}/first.txt`, body: text(3000, 100 + d) });
  items.push({ name: `spread-${d}/filler.bin`, body: pseudoRandom(300_000, 200 + d) });
}
items.push({ name: "usr/" }, { name: "usr/share/" });
for (let d = 0; d < 30; d++) {
  items.push({ name: `usr/share/d${d}/` });
  for (let f = 0; f < 20; f++)
    items.push({ name: `usr/share/d${d}/f${f}.txt`, body: text(1500 + f * 50, d * 100 + f) });
}
const bodies = new Map(items.filter((it) => it.body).map((it) => [it.name, it.body as Buffer]));

let registry: RunningRegistry;
let proxy: FaultProxy;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;
let blobPath: string;
let reader: LayerReader;
let source: FileRangeSource;
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/read-ahead" } satisfies Repository;
const mounts = new Set<{ proc: ChildProcess; dir: string }>();

interface Mount {
  dir: string;
  stderr(): string;
  stop(): Promise<number | null>;
}

let mountCount = 0;
async function mount(image: string, ...args: string[]): Promise<Mount> {
  const mnt = join(dir, `mnt-${mountCount++}`);
  await mkdir(mnt, { recursive: true });
  const proc = spawn(process.execPath, [seekableCli(), "mount", image, mnt, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const entry = { proc, dir: mnt };
  mounts.add(entry);
  let err = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mount did not come up: ${err}`)), 20_000);
    proc.once("exit", (code) => reject(new Error(`mount exited with ${code}: ${err}`)));
    proc.stdout?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return {
    dir: mnt,
    stderr: () => err,
    stop: async () => {
      proc.kill("SIGTERM");
      const code = await exited;
      mounts.delete(entry);
      return code;
    },
  };
}

/** A file's bytes as `cat` (its own process) reads them. */
function catFile(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("cat", [path], { stdio: ["ignore", "pipe", "ignore"] });
    const out: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`cat ${path}: exit ${code}`)),
    );
  });
}

/** Footer + TOC, plus every member of the files' chunks once. */
function lowerBound(paths: string[]): number {
  let bytes = source.size - reader.footer.tocOffset;
  const seen = new Set<number>();
  for (const p of paths) {
    for (const c of reader.resolve(reader.lookup(p) as never).chunks) {
      if (seen.has(c.offset)) continue;
      seen.add(c.offset);
      bytes += c.nextOffset - c.offset;
    }
  }
  return bytes;
}

const blobGets = () =>
  proxy.log.filter((e) => e.method === "GET" && e.url.includes("/blobs/") && e.range).length;

beforeAll(async () => {
  if (missing.length > 0) throw new Error(`cannot test real FUSE mounts: missing ${missing}`);
  registry = await startRegistry();
  repo.registry = registry.host;
  proxy = await startFaultProxy(registry.url);
  const tmp = await makeTempDir("read-ahead");
  dir = tmp.path;
  cleanup = tmp.remove;
  const tarPath = join(dir, "layer.tar");
  await writeFile(tarPath, await makeTar(items));
  blobPath = join(dir, "layer.blob");
  const r = await seekable("convert", tarPath, blobPath, "--json");
  expect(r.code, describeRun(r)).toBe(0);
  const tocDigest = jsonOut<{ tocDigest: string }>(r).tocDigest;
  const blob = await readFile(blobPath);
  source = await FileRangeSource.open(blobPath);
  reader = await LayerReader.open(source);
  const client = new RegistryClient();
  try {
    const name = await pushImage(client, repo, "v1", [{ blob, toc: tocDigest }]);
    ref = `docker://${name.replace(registry.host, proxy.host)}`;
  } finally {
    await client.close();
  }
}, 180_000);

afterAll(async () => {
  for (const m of mounts) {
    m.proc.kill("SIGKILL");
    try {
      execFileSync("fusermount", ["-u", "-z", m.dir], { stdio: "ignore" });
    } catch {}
  }
  await source?.close();
  await proxy?.close();
  await registry?.stop();
  await cleanup?.();
});

describe("read-ahead of neighbour files (real FUSE, real registry)", () => {
  it("a start-like workload costs far fewer requests than files, bytes within 1.2x", async () => {
    proxy.rule = undefined;
    const m = await mount(ref, "--no-cache", "--stats");
    let code: number | null;
    const before = blobGets();
    try {
      for (const p of modules) {
        expect(sha(await readFile(join(m.dir, p))), p).toBe(sha(bodies.get(p) as Buffer));
      }
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    const requests = blobGets() - before;
    const stats = statsOf(m.stderr());
    const seen = `${requests} blob GETs, ${stats.bytesFetched} bytes for a lower bound of ${lowerBound(modules)}; mount stderr: ${m.stderr()}`;
    expect(requests, seen).toBeLessThanOrEqual(MODULES / 2);
    expect(stats.bytesFetched, seen).toBeLessThanOrEqual(1.2 * lowerBound(modules));
  });

  it("never serves a corrupted neighbour; the file asked for is fine", async () => {
    const nb = reader.lookup(modules[3])?.chunks[0];
    if (!nb) throw new Error("no neighbour chunk");
    // Flip a byte inside the neighbour's member in any single-range response that covers it.
    proxy.rule = (req) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!m || !req.url?.includes("/blobs/")) return undefined;
      const [a, b] = [Number(m[1]), Number(m[2])];
      if (a > nb.offset || b < nb.nextOffset - 1) return undefined;
      return { kind: "corrupt", at: nb.offset - a + Math.floor((nb.nextOffset - nb.offset) / 2) };
    };
    const m = await mount(ref, "--no-cache");
    try {
      // The files asked for are right, though a response that carried them was corrupted.
      for (const p of modules.slice(0, 3))
        expect(sha(await readFile(join(m.dir, p))), p).toBe(sha(bodies.get(p) as Buffer));
      // The neighbour came with one of those reads (corrupted on the way)...
      expect(proxy.log.some((e) => e.fault === "corrupt")).toBe(true);
      // ...and is not served: its read fails (fetched again, corrupted again), then, with
      // the registry healthy, it reads right.
      await expect(readFile(join(m.dir, modules[3]))).rejects.toMatchObject({ code: "EIO" });
      proxy.rule = undefined;
      expect(sha(await readFile(join(m.dir, modules[3])))).toBe(
        sha(bodies.get(modules[3]) as Buffer),
      );
      for (const p of modules.slice(4, 10))
        expect(sha(await readFile(join(m.dir, p))), p).toBe(sha(bodies.get(p) as Buffer));
    } finally {
      proxy.rule = undefined;
      expect(await m.stop()).toBe(0);
    }
  });

  it("works with a slow registry that refuses multi-range", async () => {
    proxy.rule = (req) => {
      if (!req.url?.includes("/blobs/") || !req.headers.range) return undefined;
      if (req.headers.range.includes(",")) return { kind: "status", status: 501 };
      return { kind: "delay", ms: 100 };
    };
    const m = await mount(ref, "--no-cache");
    const before = blobGets();
    try {
      // Every other module, then the rest: neighbours are joined or skipped, never wrong.
      const order = [...modules.filter((_, i) => i % 2 === 0), ...modules.filter((_, i) => i % 2)];
      for (const p of order)
        expect(sha(await readFile(join(m.dir, p))), p).toBe(sha(bodies.get(p) as Buffer));
    } finally {
      proxy.rule = undefined;
      expect(await m.stop()).toBe(0);
    }
    expect(blobGets() - before).toBeLessThan(MODULES);
  });

  it("concurrent misses on different files complete together, not one after another", async () => {
    const DELAY = 500;
    const arrivals: number[] = [];
    proxy.rule = (req) => {
      if (!(req.url?.includes("/blobs/") && req.headers.range)) return undefined;
      arrivals.push(Date.now());
      return { kind: "delay", ms: DELAY };
    };
    const m = await mount(ref, "--no-cache");
    try {
      const files = Array.from({ length: SPREAD }, (_, d) => `spread-${d}/first.txt`);
      // One process per file: a process's own file reads share 4 libuv threads.
      const t0 = Date.now();
      const outs = await Promise.all(files.map((p) => catFile(join(m.dir, p))));
      const took = Date.now() - t0;
      outs.forEach((d, i) => {
        expect(sha(d), files[i]).toBe(sha(bodies.get(files[i]) as Buffer));
      });
      // Every file's request was in flight before the first one was answered...
      const first = arrivals.slice(-SPREAD);
      expect(Math.max(...first) - Math.min(...first)).toBeLessThan(DELAY);
      // ...and all were done in about one delay (serialized: SPREAD delays).
      expect(took).toBeLessThan((DELAY * SPREAD) / 2);
    } finally {
      proxy.rule = undefined;
      expect(await m.stop()).toBe(0);
    }
  });
});
