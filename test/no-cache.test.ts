// `--no-cache` keeps nothing for the next run, yet a run never fetches a chunk twice (issue 18):
// two files larger together than the memory cache, read through a real FUSE mount, the kernel's
// page cache dropped, the first read again: the registry sends each byte once.
import { writeFileSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient } from "@seekable/registry";
import { afterAll, beforeAll, expect, it } from "vitest";
import { convertItems } from "./helpers/convert.js";
import { makeTempDir } from "./helpers/files.js";
import { startForeground } from "./helpers/foreground.js";
import { pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { statsOf } from "./helpers/run.js";
import { pseudoRandom, sha } from "./helpers/tar.js";

const a = pseudoRandom(48 << 20, 1);
const b = pseudoRandom(48 << 20, 2);
let registry: RunningRegistry;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;
let blobSize: number;

beforeAll(async () => {
  registry = await startRegistry();
  const tmp = await makeTempDir("no-cache");
  dir = tmp.path;
  cleanup = tmp.remove;
  const layer = await convertItems(dir, "big", [
    { name: "data/" },
    { name: "data/a", body: a },
    { name: "data/b", body: b },
  ]);
  blobSize = layer.blob.length;
  const client = new RegistryClient();
  const repo = { registry: registry.host, repository: "seekable/no-cache" };
  ref = `docker://${await pushImage(client, repo, "v1", [{ blob: layer.blob, toc: layer.toc }]).finally(() => client.close())}`;
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await cleanup?.();
});

it("mount --no-cache: 96 MiB read (more than the pool and the memory cache hold), dropped from the page cache, read again: fetched once, nothing left behind", async () => {
  const runDirs = async () =>
    (await readdir(tmpdir())).filter((n) => n.startsWith("seekable-run-")).sort();
  const before = await runDirs();
  const mnt = join(dir, "mnt");
  await mkdir(mnt);
  const m = await startForeground("mount", ["mount", ref, mnt, "--no-cache", "--stats"]);
  try {
    expect(sha(await readFile(join(mnt, "data/a")))).toBe(sha(a));
    expect(sha(await readFile(join(mnt, "data/b")))).toBe(sha(b));
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    expect(sha(await readFile(join(mnt, "data/a")))).toBe(sha(a));
  } finally {
    expect(await m.stop()).toBe(0);
  }
  const stats = statsOf(m.stderr());
  // Each byte once: the blob (both files, the TOC), not a third more for `a` again.
  expect(stats.bytesFetched).toBeLessThanOrEqual(blobSize * 1.02);
  expect(stats.bytesFetched).toBeGreaterThan(96 << 20);
  expect(await runDirs()).toEqual(before);
});
