// Issue 10, item 1: a tar holding a duplicate name makes convert restart (the streaming pass
// stops, the output starts over, an index pass writes the layer). Under load the first
// pass's writes were still landing after the restart: the file began with zeros and stale
// bytes while --json reported the digest of the right blob. Here 20 conversions run while
// two other conversions load the machine; every file on disk must be the blob reported,
// all 20 identical, and the reference must accept one.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { makeTempDir, sha256File } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { describeRun, jsonOut, mustSucceed, reference, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom } from "./helpers/tar.js";

interface Report {
  digest: string;
  size: number;
  diffID: string;
  tocDigest: string;
}

let tmp: { path: string; remove(): Promise<void> };
let dupTar: string;
let loadTar: string;

beforeAll(async () => {
  tmp = await makeTempDir("convert-restart");
  // 5 MiB before the duplicate: more 1 MiB batches than the writer keeps in flight (4 with
  // 2 threads), so writes are under way when the duplicate is found.
  const items = [];
  for (let i = 0; i < 5; i++) items.push({ name: `d/f${i}`, body: pseudoRandom(1 << 20, i) });
  items.push({ name: "d/f0", body: "the last copy wins\n" });
  dupTar = join(tmp.path, "dup.tar");
  await writeFile(dupTar, await makeTar(items));
  loadTar = join(tmp.path, "load.tar");
  await writeFile(loadTar, await makeTar([{ name: "big", body: pseudoRandom(8 << 20, 99) }]));
});
afterAll(async () => {
  await tmp?.remove();
});

/** Converts `loadTar` over and over until `stop` is set: the machine stays busy. */
function loadLoop(n: number, stop: { done: boolean }): Promise<void> {
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [seekableCli(), "convert", loadTar, join(tmp.path, `load-${n}.esgz`)],
        {
          stdio: "ignore",
        },
      );
      child.on("close", () => resolve());
    });
  return (async () => {
    while (!stop.done) await once();
  })();
}

describe("restart after a duplicate name, under load", () => {
  test("20 conversions give 20 identical blobs, each the one reported, and the reference verifies it", async () => {
    const stop = { done: false };
    const load = [loadLoop(1, stop), loadLoop(2, stop)];
    const digests: string[] = [];
    let first: { blob: string; report: Report } | undefined;
    try {
      for (let i = 0; i < 20; i++) {
        const blob = join(tmp.path, `out-${i}.esgz`);
        const r = mustSucceed(await seekable("convert", dupTar, blob, "--json"));
        const report = jsonOut<Report>(r);
        const onDisk = await sha256File(blob);
        expect(onDisk, `run ${i}: the file is the blob reported`).toBe(report.digest);
        digests.push(onDisk);
        first ??= { blob, report };
      }
    } finally {
      stop.done = true;
      await Promise.all(load);
    }
    expect(new Set(digests).size).toBe(1);
    const { blob, report } = first as { blob: string; report: Report };
    const check = await reference(
      "check",
      blob,
      "-toc-digest",
      report.tocDigest,
      "-tar",
      dupTar,
      "-diff-id",
      report.diffID,
    );
    expect(check.code, describeRun(check)).toBe(0);
    expect(jsonOut<{ ok: boolean }>(check, true).ok).toBe(true);
  }, 600_000);
});
