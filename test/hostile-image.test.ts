// A hostile image never stalls the node (issue 20): files crafted against the guessers, a
// manifest naming one layer 10,000 times, a server killed after a second one was refused,
// a machine without libfuse2. Real FUSE, the real registry, the CLI as users run it.

import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RegistryClient, type Repository } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertItems } from "./helpers/convert.js";
import { makeTempDir } from "./helpers/files.js";
import { forceUnmount, startForeground } from "./helpers/foreground.js";
import { rewriteBlob } from "./helpers/hostile.js";
import {
  elfNeeding,
  pycImporting,
  pycSelfReferencing,
  pycWideFromList,
} from "./helpers/hostile-files.js";
import { seekableCli } from "./helpers/paths.js";
import { pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, run, seekable, statsOf } from "./helpers/run.js";
import { makeTar, sha, type TarItem } from "./helpers/tar.js";

const PY = "usr/lib/python3.11";
const big = Buffer.alloc(16 << 20); // 16 MiB of zeros: ~16 KB compressed
const hostile: Record<string, { path: string; body: Buffer }> = {
  "a .pyc listing itself among its constants": {
    path: `${PY}/__pycache__/selfref.cpython-311.pyc`,
    body: pycSelfReferencing(),
  },
  "an ELF with RUNPATH /l x1365 and 256 libraries, /l a symlink to 2000 ./": {
    path: "usr/bin/runpath",
    body: elfNeeding({
      needed: Array.from({ length: 256 }, (_, i) => `libmissing${i}.so`),
      runpath: Array(1365).fill("/l").join(":"),
    }),
  },
  "an ELF naming one 16 MiB library 256 times": {
    path: "usr/bin/bigneeds",
    body: elfNeeding({ needed: Array(256).fill("libbig.so") }),
  },
  "a .pyc with 512 imports sharing a 150k-name from-list": {
    path: `${PY}/__pycache__/wide.cpython-311.pyc`,
    body: pycWideFromList(512, 150_000),
  },
  "a .pyc importing a module named by 20,000 dots": {
    path: `${PY}/__pycache__/dots.cpython-311.pyc`,
    body: pycImporting(".".repeat(20_000)),
  },
  "a package.json whose main is 400k ./ components": {
    path: "app/node_modules/pkg/package.json",
    body: Buffer.from(JSON.stringify({ main: "./".repeat(400_000) })),
  },
};

const items: TarItem[] = [
  { name: "etc/" },
  { name: "etc/ok", body: "still answering\n" },
  { name: "etc/other", body: "another file\n" },
  { name: "l", type: "symlink", linkname: "./".repeat(2000) },
  { name: "usr/" },
  { name: "usr/bin/" },
  { name: "usr/lib/" },
  { name: `${PY}/` },
  { name: `${PY}/__init__.py`, body: "" },
  { name: `${PY}/m/` },
  { name: `${PY}/m/__init__.py`, body: "" },
  { name: `${PY}/__pycache__/` },
  { name: "usr/lib/x86_64-linux-gnu/" },
  { name: "usr/lib/x86_64-linux-gnu/libbig.so", body: big },
  { name: "app/" },
  { name: "app/node_modules/" },
  { name: "app/node_modules/pkg/" },
  ...Object.values(hostile).map(({ path, body }) => ({
    name: path,
    body,
    mode: path.startsWith("usr/bin/") ? 0o755 : 0o644,
  })),
];

let registry: RunningRegistry;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;
let blob: Buffer;
const repo = { registry: "", repository: "seekable/hostile" } satisfies Repository;
const live = new Set<{ proc: ChildProcess; dir: string }>();

let count = 0;
async function serve(what: "mount" | "store", at?: string, ...args: string[]) {
  const mnt = at ?? join(dir, `${what}-${count++}`);
  await mkdir(mnt, { recursive: true });
  const entry = { proc: undefined as unknown as ChildProcess, dir: mnt };
  const argv = what === "mount" ? ["mount", ref, mnt, ...args] : ["store", mnt, ...args];
  const fg = await startForeground(what, argv, (proc) => {
    entry.proc = proc;
    live.add(entry);
  });
  return { ...fg, dir: mnt, forget: () => live.delete(entry) };
}

/** The process's peak resident set (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1]) * 1024;
}

/** `path` read within `ms` (a read that never answers fails the test instead of hanging it). */
async function readWithin(path: string, ms: number): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${path}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([readFile(path), late]);
  } finally {
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  registry = await startRegistry();
  repo.registry = registry.host;
  const tmp = await makeTempDir("hostile-image");
  dir = tmp.path;
  cleanup = tmp.remove;
  const layer = await convertItems(dir, "hostile", items);
  blob = layer.blob;
  const client = new RegistryClient();
  try {
    ref = `docker://${await pushImage(client, repo, "v1", [{ blob, toc: layer.toc }])}`;
  } finally {
    await client.close();
  }
}, 120_000);

afterAll(async () => {
  for (const m of live) {
    m.proc.kill("SIGKILL");
    forceUnmount(m.dir);
  }
  await registry?.stop();
  await cleanup?.();
});

describe("a hostile file read through a mount (real FUSE)", () => {
  it.each(Object.entries(hostile))(
    "%s: served right; another file answers within 5 s; the mount stays under 512 MiB",
    async (_, { path, body }) => {
      const m = await serve("mount");
      try {
        // The first read (offset 0) sets the guessers on it.
        expect(sha(await readWithin(join(m.dir, path), 10_000))).toBe(sha(body));
        expect(await readWithin(join(m.dir, "etc/ok"), 5_000)).toEqual(
          Buffer.from("still answering\n"),
        );
        // Once the guess has had time to do its worst, the mount still answers, small.
        await new Promise((r) => setTimeout(r, 1500));
        expect(await readWithin(join(m.dir, "etc/other"), 5_000)).toEqual(
          Buffer.from("another file\n"),
        );
        expect(peakRss(m.proc.pid as number)).toBeLessThan(512 << 20);
      } finally {
        expect(await m.stop()).toBe(0);
        m.forget();
      }
    },
    60_000,
  );
});

describe("a manifest naming one layer many times", () => {
  it("10,000 times: one line naming the limit, exit 1, within 10 s", async () => {
    const client = new RegistryClient();
    const order = Array(10_000).fill(0);
    const many = await pushImage(client, repo, "many", [{ blob }], order).finally(() =>
      client.close(),
    );
    const t0 = Date.now();
    const r = await seekable("ls", `docker://${many}`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/10000 layers; at most 500/);
  });

  it("400 times: the layer is opened once and listed", async () => {
    const client = new RegistryClient();
    const twice = await pushImage(client, repo, "repeated", [{ blob }], Array(400).fill(0)).finally(
      () => client.close(),
    );
    const r = await seekable("ls", `docker://${twice}`, "--stats", "--no-cache");
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toMatch(/etc\/ok/);
    // The manifest, the layer's tail (footer and TOC), and a token at most: not 400 opens.
    expect(statsOf(r.stderr).requests).toBeLessThanOrEqual(4);
  });
});

describe("a server killed after a second one on its directory was refused", () => {
  it.each(["mount", "store"] as const)(
    "%s: a third one starts on the directory and serves it",
    async (what) => {
      const first = await serve(what);
      const second = await run(process.execPath, [
        seekableCli(),
        ...(what === "mount" ? ["mount", ref, first.dir] : ["store", first.dir]),
      ]);
      expect(second.code, describeRun(second)).toBe(1);
      expect(second.stderr.trim().split("\n")).toHaveLength(1);
      first.proc.kill("SIGKILL");
      await first.exited;
      first.forget();
      const third = await serve(what, first.dir);
      try {
        expect(third.stderr()).toMatch(/cleared a stale mount/);
        if (what === "mount") {
          expect(await readWithin(join(third.dir, "etc/ok"), 5_000)).toEqual(
            Buffer.from("still answering\n"),
          );
        } else {
          expect(await readdir(third.dir)).toEqual([]);
        }
      } finally {
        expect(await third.stop()).toBe(0);
        third.forget();
      }
      expect(await readdir(first.dir)).toEqual([]);
    },
    60_000,
  );
});

describe("a machine without libfuse2", () => {
  // libfuse.so.2 hidden in a private mount namespace: what a machine without the package sees.
  const lib = existsSync("/usr/lib/x86_64-linux-gnu/libfuse.so.2")
    ? execFileSync("readlink", ["-f", "/usr/lib/x86_64-linux-gnu/libfuse.so.2"], {
        encoding: "utf8",
      }).trim()
    : "";
  it.each([
    ["mount", (mnt: string) => ["mount", ref, mnt]],
    ["store", (mnt: string) => ["store", mnt]],
  ] as const)("%s: one line saying what to install, exit 1", async (_, argv) => {
    expect(lib, "libfuse2 is installed by .ci/run").not.toBe("");
    const mnt = join(dir, `nofuse-${count++}`);
    await mkdir(mnt, { recursive: true });
    const cmd = [process.execPath, seekableCli(), ...argv(mnt)].map((a) => `'${a}'`).join(" ");
    const r = await run("unshare", [
      "-m",
      "sh",
      "-c",
      `mount --bind /dev/null '${lib}' && exec ${cmd}`,
    ]);
    expect(r.code, describeRun(r)).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/FUSE is not available.*apt-get install -y libfuse2/);
  });
});

describe("convert and verify agree", () => {
  it("convert refuses a hardlink to a name the archive lacks: one line, exit 1, no output", async () => {
    const tar = join(dir, "outside.tar");
    await writeFile(
      tar,
      await makeTar([
        { name: "etc/" },
        { name: "etc/passwd-link", type: "link", linkname: "../../etc/passwd" },
      ]),
    );
    const out = join(dir, "outside.esgz");
    const r = await seekable("convert", tar, out);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/hardlink.*passwd-link.*not in the archive/);
    expect(existsSync(out)).toBe(false);
  });

  it("verify refuses an xattr value that is not base64", async () => {
    const bad = await rewriteBlob(blob, ({ toc }) => {
      const e = toc.entries.find((x) => x.name === "etc/ok");
      if (!e) throw new Error("etc/ok not in the TOC");
      e.xattrs = { "user.x": "not base64!" };
    });
    const file = join(dir, "bad-xattr.esgz");
    await writeFile(file, bad);
    const r = await seekable("verify", file);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/etc\/ok: xattr "user.x" is not valid base64/);
  });
});
