// A chunk cache directory that holds something other than the chunk file: each case must be a
// miss (the right bytes come out, nothing is served from the cache), never a hang and never
// unbounded memory, and the bad entry is then replaced by the good chunk file.
import { execFile } from "node:child_process";
import { lstat, mkdir, readFile, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { describeRun, run, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha } from "./helpers/tar.js";

let dir: string;
let cleanup: () => Promise<void>;
let blob: string;
const body = pseudoRandom(300_000, 7);
/** The chunk planted on: its digest, size and bytes. */
let target: { digest: string; size: number; data: Buffer };

beforeAll(async () => {
  const tmp = await makeTempDir("cache-hostile");
  dir = tmp.path;
  cleanup = tmp.remove;
  const tarPath = join(dir, "l.tar");
  await writeFile(tarPath, await makeTar([{ name: "f.bin", body }]));
  blob = join(dir, "l.esgz");
  const r = await seekable("convert", tarPath, blob, "--chunk-size", "100000");
  expect(r.code, describeRun(r)).toBe(0);
  const toc = await seekable("toc", blob);
  const entries = JSON.parse(toc.stdout.toString("utf8")).entries as {
    chunkOffset?: number;
    chunkSize?: number;
    chunkDigest?: string;
  }[];
  const second = entries.find((e) => e.chunkOffset === 100_000 && e.chunkDigest);
  if (!second?.chunkDigest || !second.chunkSize) throw new Error("no second chunk in the TOC");
  const data = body.subarray(100_000, 100_000 + second.chunkSize);
  target = { digest: second.chunkDigest, size: second.chunkSize, data };
}, 60_000);

afterAll(async () => {
  await cleanup?.();
});

function chunkPath(cache: string): string {
  const hex = target.digest.slice("sha256:".length);
  return join(cache, "chunks", "sha256", hex.slice(0, 2), hex);
}

/**
 * `seekable cat` with memory capped (RLIMIT_DATA) and a deadline: an unbounded read fails the
 * allocation, a hang is killed. Returns the run and the stats line.
 */
async function catWith(plant: (p: string) => Promise<void>, name: string) {
  const cache = join(dir, `cache-${name}`);
  const p = chunkPath(cache);
  await mkdir(join(p, ".."), { recursive: true });
  await plant(p);
  const timeFile = join(dir, `time-${name}`);
  // timeout(1) escalates to SIGKILL: a thread blocked in open(2) outlives SIGTERM.
  const r = await run("timeout", [
    "-k",
    "5",
    "20",
    "/usr/bin/time",
    "-f",
    "%M",
    "-o",
    timeFile,
    "prlimit",
    `--data=${512 << 20}`,
    "--",
    process.execPath,
    seekableCli(),
    "cat",
    blob,
    "f.bin",
    "--cache-dir",
    cache,
    "--stats",
  ]);
  const maxRssKiB = Number(
    (await readFile(timeFile, "utf8").catch(() => "0")).trim().split("\n").pop(),
  );
  return { r, p, cache, maxRssKiB };
}

async function expectMissThenReplaced(plant: (p: string) => Promise<void>, name: string) {
  const { r, p, maxRssKiB } = await catWith(plant, name);
  expect(r.code, describeRun(r)).toBe(0); // 124/137: killed by the deadline
  expect(maxRssKiB).toBeLessThan(200 << 10);
  expect(sha(r.stdout)).toBe(sha(body));
  expect(statsOf(r.stderr).bytesServedFromCache).toBe(0);
  // The bad entry was replaced by the good chunk file.
  const st = await lstat(p);
  expect(st.isFile()).toBe(true);
  expect(sha(await readFile(p))).toBe(target.digest);
}

describe("a hostile chunk cache directory is a miss", () => {
  it("a FIFO in place of a chunk file: no hang", async () => {
    await expectMissThenReplaced(
      (p) => promisify(execFile)("mkfifo", [p]).then(() => undefined),
      "fifo",
    );
  });

  it("a symlink to /dev/zero: bounded memory", async () => {
    await expectMissThenReplaced((p) => symlink("/dev/zero", p), "devzero");
  });

  it("a symlink to a good chunk file elsewhere is not followed", async () => {
    const good = join(dir, "good-elsewhere");
    await writeFile(good, target.data);
    await expectMissThenReplaced((p) => symlink(good, p), "symlink-good");
  });

  it("a directory", async () => {
    await expectMissThenReplaced(async (p) => {
      await mkdir(join(p, "inner"), { recursive: true });
      await writeFile(join(p, "inner", "x"), "x");
    }, "dir");
  });

  it("an oversized file (the right bytes, then 256 MiB more): bounded memory", async () => {
    await expectMissThenReplaced(async (p) => {
      await writeFile(p, target.data);
      await truncate(p, target.size + (256 << 20)); // sparse: costs no disk
    }, "oversized");
  });

  it("a truncated file", async () => {
    await expectMissThenReplaced(
      (p) => writeFile(p, target.data.subarray(0, target.size - 1)),
      "truncated",
    );
  });

  it("a file of the right size with wrong content", async () => {
    await expectMissThenReplaced(async (p) => {
      const bad = Buffer.from(target.data);
      bad[bad.length >> 1] ^= 0xff;
      await writeFile(p, bad);
    }, "wrong");
  });

  it("a good chunk file is a hit", async () => {
    const { r } = await catWith((p) => writeFile(p, target.data), "good");
    expect(r.code, describeRun(r)).toBe(0);
    expect(sha(r.stdout)).toBe(sha(body));
    expect(statsOf(r.stderr).bytesServedFromCache).toBe(target.size);
  });
});
