// Hostile chunks through the real CLI and a real FUSE mount: a gzip bomb behind a 6-byte TOC
// entry, a corrupted member whose chunk digest was already seen elsewhere, and a chunk offset
// pointing into the middle of another member.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import {
  entryOf,
  replaceTocMember,
  rewriteBlob,
  tarHeader,
  zeroBombMember,
} from "./helpers/hostile.js";
import { seekableCli } from "./helpers/paths.js";
import { describeRun, mustSucceed, type RunResult, run, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha } from "./helpers/tar.js";

const HELLO = Buffer.from("hello\n");
const other = pseudoRandom(300_000, 3);

let dir: string;
let cleanup: () => Promise<void>;
let valid: Buffer;

beforeAll(async () => {
  const tmp = await makeTempDir("hostile-chunks");
  dir = tmp.path;
  cleanup = tmp.remove;
  const tar = await makeTar([
    { name: "etc/" },
    { name: "etc/hello", body: HELLO },
    { name: "etc/same-1", body: "the same bytes\n".repeat(100) },
    { name: "etc/same-2", body: "the same bytes\n".repeat(100) },
    { name: "usr/other.bin", body: other },
    { name: "usr/last.txt", body: "last\n" },
  ]);
  await writeFile(join(dir, "in.tar"), tar);
  mustSucceed(await seekable("convert", join(dir, "in.tar"), join(dir, "valid.gz")));
  valid = await readFile(join(dir, "valid.gz"));
});

afterAll(async () => {
  await cleanup?.();
});

/** `seekable ARGS` under GNU time: the child's own peak RSS in KiB, no cache. */
async function seekableMeasured(...args: string[]): Promise<RunResult & { peakKiB: number }> {
  const out = join(dir, `time-${process.hrtime.bigint()}`);
  const r = await run(
    "/usr/bin/time",
    ["-f", "%M", "-o", out, process.execPath, seekableCli(), ...args, "--no-cache"],
    { timeoutMs: 120_000 },
  );
  const peakKiB = Number((await readFile(out, "utf8")).trim().split("\n").pop());
  return { ...r, peakKiB };
}

function expectOneLineError(r: RunResult, ...parts: string[]): void {
  expect(r.code, describeRun(r)).toBe(1);
  expect(r.stderr.trimEnd().split("\n"), describeRun(r)).toHaveLength(1);
  for (const p of parts) expect(r.stderr, describeRun(r)).toContain(p);
}

/** A blob with an extra entry "bomb": TOC says 6 bytes, its member inflates to 3 GiB. */
async function bombBlob(): Promise<string> {
  const bomb = await zeroBombMember(3 * 1024 ** 3);
  const blob = await rewriteBlob(valid, ({ toc, append }) => {
    append(tarHeaderMember("bomb", HELLO.length));
    const offset = append(bomb);
    toc.entries.push({
      name: "bomb",
      type: "reg",
      size: HELLO.length,
      mode: 0o644,
      offset,
      digest: sha(HELLO),
      chunkDigest: sha(HELLO),
    });
  });
  const path = join(dir, "bomb.gz");
  await writeFile(path, blob);
  return path;
}

function tarHeaderMember(name: string, size: number): Buffer {
  // The header of an entry lies in the member before its payload, as the writer puts it.
  return Buffer.from(
    execFileSync("gzip", ["-c", "-n"], { input: tarHeader(name, size), maxBuffer: 1 << 20 }),
  );
}

describe("a gzip bomb behind a small TOC entry", () => {
  let blob: string;
  beforeAll(async () => {
    blob = await bombBlob();
  });

  it("cat fails in under 5 s at under 256 MiB peak, one line, exit 1", async () => {
    const r = await seekableMeasured("cat", blob, "bomb");
    expectOneLineError(r, "bomb");
    expect(r.ms, describeRun(r)).toBeLessThan(5000);
    expect(r.peakKiB, describeRun(r)).toBeLessThan(256 * 1024);
    expect(r.stdout.length).toBe(0);
    // The other files of the blob are still served.
    const ok = mustSucceed(await seekable("cat", blob, "usr/other.bin", "--no-cache"));
    expect(ok.stdout.equals(other)).toBe(true);
  });

  it("verify fails in under 5 s at under 256 MiB peak, one line, exit 1", async () => {
    const r = await seekableMeasured("verify", blob);
    expectOneLineError(r, "bomb");
    expect(r.ms, describeRun(r)).toBeLessThan(5000);
    expect(r.peakKiB, describeRun(r)).toBeLessThan(256 * 1024);
  });

  /** What real FUSE needs; missing is a failure, as in mount.test.ts. */
  const fuseMissing = [
    process.getuid?.() === 0 ? "" : "root",
    existsSync("/dev/fuse") ? "" : "/dev/fuse",
    existsSync("/usr/bin/fusermount") ? "" : "fuse3 (fusermount)",
  ].filter(Boolean);

  it("through a mount, other files stay readable while the bomb is read", async () => {
    expect(fuseMissing, "needed for FUSE tests").toEqual([]);
    const mnt = join(dir, "mnt");
    await mkdir(mnt, { recursive: true });
    const proc = spawn(process.execPath, [seekableCli(), "mount", blob, mnt, "--no-cache"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      await mounted(proc);
      const bombRead = run("cat", [join(mnt, "bomb")], { timeoutMs: 120_000 });
      // Reads of another file are answered while the bomb read is in flight.
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 5; i++) {
        const r = await run("cat", [join(mnt, "usr/other.bin")], { timeoutMs: 3000 });
        expect(r.code, describeRun(r, 0)).toBe(0);
        expect(r.stdout.equals(other)).toBe(true);
        expect(r.ms).toBeLessThan(2000);
        // Drop the kernel's page cache of the file so the next read reaches the mount.
        execFileSync("sh", ["-c", "echo 1 > /proc/sys/vm/drop_caches"]);
      }
      const b = await bombRead;
      expect(b.code, describeRun(b)).toBe(1);
      expect(b.stderr).toContain("Input/output error");
      expect(b.ms).toBeLessThan(5000);
      // The mount process itself never held the inflated bomb.
      const status = await readFile(`/proc/${proc.pid}/status`, "utf8");
      const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
      expect(hwm).toBeLessThan(256 * 1024);
    } finally {
      proc.kill("SIGTERM");
      const exited = await Promise.race([
        new Promise((r) => proc.once("exit", () => r(true))),
        new Promise((r) => setTimeout(() => r(false), 20_000)),
      ]);
      if (!exited) proc.kill("SIGKILL");
      try {
        execFileSync("fusermount", ["-u", "-z", mnt], { stdio: "ignore" });
      } catch {
        // already unmounted
      }
    }
  });
});

/** Resolves when `seekable mount` prints its first line (the mount is up). */
function mounted(proc: ChildProcess): Promise<void> {
  let err = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mount did not come up: ${err}`)), 20_000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mount exited with ${code}: ${err}`));
    });
    proc.stdout?.setEncoding("utf8").once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe("a gzip bomb as the TOC member", () => {
  it("is refused at the TOC size cap: one line, exit 1", async () => {
    const path = join(dir, "toc-bomb.gz");
    await writeFile(path, await replaceTocMember(valid, await zeroBombMember(2 * 1024 ** 3)));
    const r = await seekableMeasured("ls", path);
    expectOneLineError(r, "TOC", "limit");
    // Inflating up to the cap takes ~11 s on a loaded machine (16 KiB zlib output buffers).
    expect(r.ms, describeRun(r)).toBeLessThan(30_000);
    // The cap (512 MiB of TOC) bounds what is inflated, not 2 GiB.
    expect(r.peakKiB, describeRun(r)).toBeLessThan(1024 * 1024);
  });
});

describe("verify reads every member", () => {
  it("a corrupted member of a file whose chunk digest was seen before fails verify", async () => {
    const blob = await rewriteBlob(valid, ({ toc, payload }) => {
      // Flip bytes inside the deflate data of the later of two identical files.
      const off = entryOf(toc, "etc/same-2").offset as number;
      for (let i = 12; i < 20; i++) payload[off + i] ^= 0x55;
    });
    const path = join(dir, "same-corrupt.gz");
    await writeFile(path, blob);
    const cat = await seekable("cat", path, "etc/same-2", "--no-cache");
    expect(cat.code, describeRun(cat)).toBe(1);
    for (const cache of [[], ["--no-cache"]]) {
      const r = await seekable("verify", path, ...cache);
      expectOneLineError(r, "etc/same-2");
    }
    // The valid blob still verifies.
    mustSucceed(await seekable("verify", join(dir, "valid.gz"), "--no-cache"));
  });
});

describe("a chunk offset into the middle of a member", () => {
  it("the error names the entry whose offset is wrong", async () => {
    const blob = await rewriteBlob(valid, ({ toc }) => {
      // usr/last.txt points 40 bytes into the member of usr/other.bin (before it).
      const victim = entryOf(toc, "usr/other.bin");
      const bad = entryOf(toc, "usr/last.txt");
      bad.offset = (victim.offset as number) + 40;
    });
    const path = join(dir, "mid-member.gz");
    await writeFile(path, blob);
    for (const args of [
      ["cat", path, "usr/last.txt"],
      ["cat", path, "usr/other.bin"],
      ["verify", path],
    ]) {
      const r = await seekable(...args, "--no-cache");
      expectOneLineError(r, "usr/last.txt");
      expect(r.stderr).not.toContain("usr/other.bin");
    }
  });
});
