// A layer whose one file sits 100,000 directories deep (a/a/…/a/f, 200 KB of path in a PAX
// header). `convert` writes it (the TOC holds one entry); reading it must not overflow the
// stack (before: "Maximum call stack size exceeded" from the index's recursive parent
// creation) nor build 100,000 paths of up to 200 KB each: `ls` and `verify` refuse it with one
// line naming the blob and the limit, exit 1. A path 1,000 levels deep (under the limit) is
// listed, read and verified.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import { describeRun, mustSucceed, seekable } from "./helpers/run.js";
import { makeTar } from "./helpers/tar.js";

let dir: string;
let cleanup: () => Promise<void>;
const deepName = (levels: number) => `${"a/".repeat(levels)}f`;

beforeAll(async () => {
  const tmp = await makeTempDir("deep-path");
  dir = tmp.path;
  cleanup = tmp.remove;
  for (const [label, levels] of [
    ["too-deep", 100_000],
    ["deep", 1_000],
  ] as const) {
    const tar = join(dir, `${label}.tar`);
    await writeFile(tar, await makeTar([{ name: deepName(levels), body: "hello\n" }]));
    mustSucceed(await seekable("convert", tar, join(dir, `${label}.esgz`)));
  }
}, 120_000);

afterAll(async () => {
  await cleanup?.();
});

it("ls and verify of a 100,000-level path give one line and exit 1, no stack overflow", async () => {
  const blob = join(dir, "too-deep.esgz");
  for (const args of [
    ["ls", blob],
    ["verify", blob],
    ["ls", blob, "a/a/a"],
  ]) {
    const r = await seekable(...args);
    const why = describeRun(r);
    expect(r.code, why).toBe(1);
    expect(r.stderr, why).not.toMatch(/call stack|heap|\n\s+at /);
    expect(r.stderr.trimEnd().split("\n"), why).toHaveLength(1);
    expect(r.stderr, why).toContain("too-deep.esgz");
    expect(r.stderr, why).toMatch(/100001 levels.*limit of 1024 levels/);
    expect(r.stdout.length, why).toBe(0);
  }
}, 120_000);

it("a 1,000-level path is listed, read and verified", async () => {
  const blob = join(dir, "deep.esgz");
  const ls = mustSucceed(await seekable("ls", blob, "--json"));
  expect(ls.stdout.toString("utf8")).toContain(deepName(1_000));
  const cat = mustSucceed(await seekable("cat", blob, deepName(1_000)));
  expect(cat.stdout.toString("utf8")).toBe("hello\n");
  mustSucceed(await seekable("verify", blob));
}, 120_000);
