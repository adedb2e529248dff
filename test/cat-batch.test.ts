// `seekable cat` of a file list larger than the memory chunk cache, against the real registry
// through a counting proxy: the files come out in order and right, no member of the blob is
// fetched twice, the bytes fetched stay within 1.1x of the lower bound (every layer's footer
// and TOC plus the members of the chunks read), and memory stays bounded.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FileRangeSource, LayerReader } from "@seekable/format";
import { ImageFS } from "@seekable/reader";
import { RegistryClient, type Repository } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { type PushedLayer, pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, run, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

let registry: RunningRegistry;
let proxy: FaultProxy;
let dir: string;
let cleanup: () => Promise<void>;
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/cat-batch" } satisfies Repository;
const blobs: { digest: string; path: string; size: number; tocOffset: number }[] = [];
/** What the merged image shows: path -> content. */
const merged = new Map<string, Buffer>();
/** The request list: every visible file in a shuffled order, one listed twice. */
let list: string[] = [];

/**
 * 170 KiB that deflate shrinks (a random block repeated): cheap to convert and push. The block
 * size does not divide the chunk size, so no two chunks are alike (a cache keyed by chunk
 * digest cannot fold them).
 */
function content(seed: number, size = 170 << 10): Buffer {
  const block = pseudoRandom(7171, seed);
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += block.length) block.copy(out, o);
  return out;
}

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  repo.registry = registry.host;
  const tmp = await makeTempDir("cat-batch");
  dir = tmp.path;
  cleanup = tmp.remove;
  const layers: TarItem[][] = [];
  for (let l = 0; l < 3; l++) {
    const items: TarItem[] = [{ name: `d${l}/` }];
    for (let i = 0; i < 80; i++) {
      const name = `d${l}/f${String(i).padStart(3, "0")}`;
      const body = content(l * 1000 + i);
      items.push({ name, body });
      merged.set(name, body);
    }
    if (l === 0) {
      items.push({ name: "shared/" });
      for (let i = 0; i < 4; i++) items.push({ name: `shared/s${i}`, body: `lower ${i}` });
    } else if (l === 1) {
      // Replaces two lower files (small, so the unread lower members barely widen gaps).
      items.push({ name: "shared/" });
      for (let i = 0; i < 2; i++) {
        const body = content(9000 + i);
        items.push({ name: `shared/s${i}`, body });
        merged.set(`shared/s${i}`, body);
      }
    }
    layers.push(items);
  }
  for (let i = 2; i < 4; i++) merged.set(`shared/s${i}`, Buffer.from(`lower ${i}`));
  const client = new RegistryClient();
  const pushed: PushedLayer[] = [];
  try {
    for (let l = 0; l < layers.length; l++) {
      const tarPath = join(dir, `l${l}.tar`);
      await writeFile(tarPath, await makeTar(layers[l]));
      const out = join(dir, `l${l}.esgz`);
      const r = await seekable("convert", tarPath, out, "--chunk-size", "65536");
      expect(r.code, describeRun(r)).toBe(0);
      const data = await readFile(out);
      const digest = sha(data);
      const src = await FileRangeSource.open(out);
      const { tocOffset } = (await LayerReader.open(src)).footer;
      await src.close();
      blobs.push({ digest, path: out, size: data.length, tocOffset });
      pushed.push({ blob: data });
    }
    await pushImage(client, repo, "v1", pushed);
  } finally {
    await client.close();
  }
  // A deterministic shuffle: output order is not blob order.
  const paths = [...merged.keys()];
  let seed = 12345;
  for (let i = paths.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [paths[i], paths[j]] = [paths[j] as string, paths[i] as string];
  }
  list = [...paths, paths[3] as string];
}, 300_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  await cleanup?.();
});

/** The least a reader must fetch for `paths`: each layer's TOC and footer, each member once. */
async function lowerBound(paths: string[]): Promise<number> {
  const readers: LayerReader[] = [];
  const sources: FileRangeSource[] = [];
  try {
    for (const b of blobs) {
      const src = await FileRangeSource.open(b.path);
      sources.push(src);
      readers.push(await LayerReader.open(src));
    }
    const fs = new ImageFS(readers);
    let bytes = 0;
    for (const r of readers) bytes += r.source.size - r.footer.tocOffset;
    const members = new Map<LayerReader, Map<number, number>>();
    for (const p of paths) {
      const m = fs.lookup(p);
      if (!m) throw new Error(`${p} is not in the image`);
      const reader = m.layer as LayerReader;
      const node = reader.resolve(reader.lookup(m.node.path) as never);
      const seen = members.get(reader) ?? new Map<number, number>();
      members.set(reader, seen);
      for (const c of node.chunks) seen.set(c.offset, c.nextOffset - c.offset);
    }
    for (const seen of members.values()) for (const n of seen.values()) bytes += n;
    return bytes;
  } finally {
    for (const s of sources) await s.close();
  }
}

/** Byte ranges of one Range header, resolved against the blob size. */
function rangesOf(header: string, size: number): [number, number][] {
  return header
    .replace(/^bytes=/, "")
    .split(",")
    .map((part) => {
      const [a, b] = part.trim().split("-");
      if (a === "") return [size - Number(b), size] as [number, number];
      return [Number(a), b === "" ? size : Number(b) + 1] as [number, number];
    });
}

describe("cat of a file list larger than the memory cache", () => {
  it("streams every file once, in order, within 1.1x of the lower bound", async () => {
    const total = list.reduce((n, p) => n + (merged.get(p) as Buffer).length, 0);
    expect(total).toBeGreaterThan(32 << 20); // more than the memory cache holds
    const timeFile = join(dir, "time-nocache");
    proxy.log.length = 0;
    const r = await run("/usr/bin/time", [
      "-f",
      "%M",
      "-o",
      timeFile,
      process.execPath,
      seekableCli(),
      "cat",
      `docker://${proxy.host}/${repo.repository}:v1`,
      ...list,
      "--no-cache",
      "--stats",
    ]);
    expect(r.code, describeRun(r, 200)).toBe(0);
    const want = Buffer.concat(list.map((p) => merged.get(p) as Buffer));
    expect(r.stdout.length).toBe(want.length);
    expect(sha(r.stdout)).toBe(sha(want));

    // Every blob byte fetched at most once, leaving out each layer's tail read at open (it may
    // reach into the last members, which a later read may then fetch again).
    let fetched = 0;
    for (const b of blobs) {
      const entries = proxy.log.filter((e) => e.method === "GET" && e.url.endsWith(b.digest));
      const spans: [number, number][] = [];
      for (const e of entries) {
        fetched += e.bytesSent;
        expect(e.range, "a blob GET without a Range header").toBeDefined();
        const rs = rangesOf(e.range as string, b.size);
        if (rs.some(([, end]) => end === b.size)) continue;
        spans.push(...rs);
      }
      spans.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < spans.length; i++) {
        const [s, e] = spans[i] as [number, number];
        const prev = spans[i - 1] as [number, number];
        expect(s, `${b.digest}: [${s},${e}) fetched again after [${prev}]`).toBeGreaterThanOrEqual(
          prev[1],
        );
      }
    }
    const bound = await lowerBound(list);
    const stats = statsOf(r.stderr);
    expect(fetched / bound, JSON.stringify({ fetched, bound, stats })).toBeLessThanOrEqual(1.1);
    const rssKiB = Number((await readFile(timeFile, "utf8")).trim().split("\n").pop());
    expect(rssKiB).toBeLessThan(256 << 10);
  });

  it("with a disk cache: a second run is served from it without a blob request", async () => {
    const cache = join(dir, "cache");
    const ref = `docker://${proxy.host}/${repo.repository}:v1`;
    const first = await seekable("cat", ref, ...list, "--cache-dir", cache, "--stats");
    expect(first.code, describeRun(first, 200)).toBe(0);
    proxy.log.length = 0;
    const again = await seekable("cat", ref, ...list, "--cache-dir", cache, "--stats");
    expect(again.code, describeRun(again, 200)).toBe(0);
    const want = Buffer.concat(list.map((p) => merged.get(p) as Buffer));
    expect(sha(again.stdout)).toBe(sha(want));
    // Only the TOC is read again (the tail read at open may reach into the last members).
    const memberGets = proxy.log.filter((e) => {
      const b = blobs.find((x) => e.method === "GET" && e.url.endsWith(x.digest));
      if (!b) return false;
      const rs = rangesOf(e.range ?? "bytes=0-", b.size);
      return rs.some(([s]) => s < b.tocOffset) && !rs.some(([, end]) => end === b.size);
    });
    expect(memberGets).toEqual([]);
  });
});
