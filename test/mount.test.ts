// `seekable mount` with real FUSE (as root) over images pushed to the real registry: metadata
// and contents equal to the source, whiteouts, a program started from the mount, --record,
// clean unmount on SIGTERM, stale mounts, and registry faults turned into EIO.

import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RegistryClient, type Repository } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertItems } from "./helpers/convert.js";
import { dynamicProgram } from "./helpers/dynamic-program.js";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { forceUnmount, startForeground } from "./helpers/foreground.js";
import { pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, run, seekable, statsOf } from "./helpers/run.js";
import { MTIME, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

const BUSYBOX = "/bin/busybox";
/** What real FUSE tests need; .ci/run installs the Debian packages. Missing is a failure. */
const missing = [
  process.getuid?.() === 0 ? "" : "root",
  existsSync("/dev/fuse") ? "" : "/dev/fuse",
  existsSync(BUSYBOX) ? "" : "busybox-static (/bin/busybox)",
  ...["fusermount", "getfattr"].map((c) => {
    try {
      execFileSync("sh", ["-c", `command -v ${c}`]);
      return "";
    } catch {
      return c === "fusermount" ? "fuse3 (fusermount)" : "attr (getfattr)";
    }
  }),
].filter((m) => m !== "");

const big = pseudoRandom(3 * 1024 * 1024 + 5, 7);
const layers: TarItem[][] = [
  [
    { name: "bin/" },
    { name: "bin/busybox", body: Buffer.alloc(0), mode: 0o755 }, // body filled in beforeAll
    { name: "bin/sh", type: "symlink", linkname: "busybox" },
    { name: "bin/cat", type: "symlink", linkname: "/bin/busybox" },
    { name: "etc/", mode: 0o750, uid: 3, gid: 4 },
    { name: "etc/motd", body: "welcome to the mount\n", xattrs: { "user.kind": "motd" } },
    { name: "etc/gone", body: "removed above" },
    { name: "etc/secret", body: "s3cret\n", mode: 0o600, uid: 1000, gid: 1001 },
    { name: "dev/" },
    { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
    { name: "dev/pipe", type: "fifo", mode: 0o600 },
    { name: "usr/" },
    { name: "usr/lib/" },
    { name: "usr/lib/big.bin", body: big },
    { name: "usr/lib/small.txt", body: "small" },
    { name: "usr/lib/setuid", body: "#!/bin/sh\n", mode: 0o4755 },
    { name: "opt/" },
    { name: "opt/old/" },
    { name: "opt/old/x", body: "hidden by opaque" },
  ],
  [
    { name: "etc/", mode: 0o750, uid: 3, gid: 4 },
    { name: "etc/.wh.gone", body: "" },
    // Parents are listed as real layers list them (an implicit directory would carry no
    // metadata and, merged, hide the lower one's).
    { name: "opt/" },
    { name: "opt/old/" },
    { name: "opt/old/.wh..wh..opq", body: "" },
    { name: "opt/old/y", body: "y" },
    { name: "usr/" },
    { name: "usr/lib/" },
    { name: "usr/lib/small.txt", body: "small, replaced" },
    { name: "usr/lib/hard", type: "link", linkname: "usr/lib/small.txt" },
    {
      name: "usr/lib/attrs",
      body: "x",
      xattrs: { "user.a": "1", "user.bin": "\u0001\u0002" },
    },
  ],
];

/** What the merged image must show: path (no slash) -> source item (hardlinks resolved). */
const expected = new Map<string, TarItem & { nlink: number }>();

let registry: RunningRegistry;
let proxy: FaultProxy;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;
let proxyRef: string;
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/mount" } satisfies Repository;
const mounts = new Set<{ proc: ChildProcess; dir: string }>();

interface Mount {
  dir: string;
  proc: ChildProcess;
  stdout: string;
  stderr(): string;
  /** SIGTERM, then the exit code (fails the test if it takes more than 20 s). */
  stop(): Promise<number | null>;
}

let mountCount = 0;
async function mount(image: string, ...args: string[]): Promise<Mount> {
  const mnt = join(dir, `mnt-${mountCount++}`);
  await mkdir(mnt, { recursive: true });
  return mountAt(mnt, image, ...args);
}

async function mountAt(mnt: string, image: string, ...args: string[]): Promise<Mount> {
  const entry = { proc: undefined as unknown as ChildProcess, dir: mnt };
  const fg = await startForeground("mount", ["mount", image, mnt, ...args], (proc) => {
    entry.proc = proc;
    mounts.add(entry);
  });
  return {
    dir: mnt,
    proc: fg.proc,
    stdout: fg.stdout,
    stderr: fg.stderr,
    stop: async () => {
      const code = await fg.stop();
      mounts.delete(entry);
      return code;
    },
  };
}

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(`cannot test real FUSE mounts: missing ${missing.join(", ")}`);
  registry = await startRegistry();
  repo.registry = registry.host;
  proxy = await startFaultProxy(registry.url);
  const tmp = await makeTempDir("mount");
  dir = tmp.path;
  cleanup = tmp.remove;
  (layers[0][1] as TarItem).body = await readFile(BUSYBOX);
  // Small chunks: a file spans many, so read-ahead and coalescing are visible.
  const converted = [];
  for (const [i, items] of layers.entries())
    converted.push(await convertItems(dir, `l${i}`, items, "--chunk-size", "65536"));
  const blobs = converted.map((c) => c.blob);
  const tocs = converted.map((c) => c.toc);
  const client = new RegistryClient();
  try {
    const pushed = blobs.map((blob, i) => ({ blob, toc: tocs[i] }));
    ref = `docker://${await pushImage(client, repo, "v1", pushed)}`;
  } finally {
    await client.close();
  }
  proxyRef = ref.replace(registry.host, proxy.host);
  // The merged view: later layers win, whiteouts remove, hardlinks resolve.
  for (const layer of layers) {
    for (const it of layer) {
      const name = it.name.replace(/\/$/, "");
      const base = name.slice(name.lastIndexOf("/") + 1);
      const parent = name.slice(0, Math.max(0, name.lastIndexOf("/")));
      if (base === ".wh..wh..opq") {
        for (const k of [...expected.keys()]) if (k.startsWith(`${parent}/`)) expected.delete(k);
        continue;
      }
      if (base.startsWith(".wh.")) {
        expected.delete(`${parent}/${base.slice(4)}`);
        continue;
      }
      if (it.type === "link") {
        const target = expected.get(it.linkname as string) as TarItem & { nlink: number };
        target.nlink = 2;
        expected.set(name, target);
        continue;
      }
      expected.set(name, { ...it, nlink: 1 });
    }
  }
}, 180_000);

afterAll(async () => {
  for (const m of mounts) {
    m.proc.kill("SIGKILL");
    forceUnmount(m.dir);
  }
  await proxy?.close();
  await registry?.stop();
  await cleanup?.();
});

const S_IFMT = 0o170000;
const typeBits: Record<string, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  "character-device": 0o020000,
  "block-device": 0o060000,
  fifo: 0o010000,
};

describe("seekable mount (real FUSE, real registry)", () => {
  it("shows every entry with the source's metadata and contents", async () => {
    const m = await mount(ref, "--no-cache");
    try {
      expect(m.stdout).toBe(`mounted ${ref} at ${m.dir}\n`);
      // The tree: whiteouts and opaque directories applied, no whiteout or landmark shown.
      const names: string[] = [];
      const walk = async (rel: string) => {
        for (const e of await readdir(join(m.dir, rel), { withFileTypes: true })) {
          const p = rel ? `${rel}/${e.name}` : e.name;
          names.push(p);
          if (e.isDirectory()) await walk(p);
        }
      };
      await walk("");
      expect(names.sort()).toEqual([...expected.keys()].sort());
      expect(names).not.toContain("etc/gone");
      expect(names).not.toContain("opt/old/x");

      for (const [name, it] of expected) {
        const p = join(m.dir, name);
        const st = await lstat(p);
        const type = it.type ?? (it.body !== undefined ? "file" : "directory");
        expect(st.mode & S_IFMT, name).toBe(typeBits[type]);
        if (type !== "symlink") {
          expect(st.mode & 0o7777, name).toBe(it.mode ?? (type === "directory" ? 0o755 : 0o644));
        }
        expect([st.uid, st.gid], name).toEqual([it.uid ?? 0, it.gid ?? 0]);
        expect(st.mtimeMs, name).toBe(MTIME.getTime());
        if (type === "file") {
          const body = Buffer.from(it.body as Buffer | string);
          expect(st.size, name).toBe(body.length);
          expect(st.nlink, name).toBe(it.nlink);
          expect(sha(await readFile(p)), name).toBe(sha(body));
        }
        if (type === "symlink") expect(await readlink(p), name).toBe(it.linkname);
        if (type === "character-device" || type === "block-device") {
          // glibc's makedev for small numbers.
          expect(st.rdev, name).toBe(((it.devmajor ?? 0) << 8) | (it.devminor ?? 0));
        }
      }

      // Hardlinks share the inode and its link count.
      const a = await lstat(join(m.dir, "usr/lib/small.txt"));
      const b = await lstat(join(m.dir, "usr/lib/hard"));
      expect(b.ino).toBe(a.ino);
      expect(a.nlink).toBe(2);
      expect((await lstat(join(m.dir, "usr/lib/big.bin"))).ino).not.toBe(a.ino);

      // xattrs through getxattr/listxattr, values decoded.
      const attrs = await run("getfattr", ["-d", "-e", "hex", join(m.dir, "usr/lib/attrs")]);
      expect(attrs.code, describeRun(attrs)).toBe(0);
      expect(attrs.stdout.toString()).toContain("user.a=0x31");
      expect(attrs.stdout.toString()).toContain("user.bin=0x0102");
      const motd = await run("getfattr", [
        "-n",
        "user.kind",
        "--only-values",
        join(m.dir, "etc/motd"),
      ]);
      expect(motd.stdout.toString()).toBe("motd");
      const none = await run("getfattr", ["-n", "user.none", join(m.dir, "etc/motd")]);
      expect(none.code).not.toBe(0);

      // Read-only.
      await expect(writeFile(join(m.dir, "etc/motd"), "x")).rejects.toMatchObject({
        code: "EROFS",
      });
      await expect(writeFile(join(m.dir, "new"), "x")).rejects.toMatchObject({ code: "EROFS" });
      await expect(mkdir(join(m.dir, "newdir"))).rejects.toMatchObject({ code: "EROFS" });
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it("starts a program from the mount (chroot busybox)", async () => {
    const m = await mount(ref);
    try {
      const echo = await run("chroot", [m.dir, "/bin/busybox", "echo", "hello"]);
      expect(echo.code, describeRun(echo)).toBe(0);
      expect(echo.stdout.toString()).toBe("hello\n");
      const sh = await run("chroot", [m.dir, "/bin/sh", "-c", "cat /etc/motd; cat /usr/lib/hard"]);
      expect(sh.code, describeRun(sh)).toBe(0);
      expect(sh.stdout.toString()).toBe("welcome to the mount\nsmall, replaced");
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it("reads a large file sequentially in few requests (read-ahead)", async () => {
    const m = await mount(ref, "--no-cache", "--stats");
    let code: number | null;
    try {
      expect(sha(await readFile(join(m.dir, "usr/lib/big.bin")))).toBe(sha(big));
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    const stats = statsOf(m.stderr());
    // 3 MiB in 64 KiB chunks is 49 chunks, read by the kernel in 128 KiB requests: without
    // read-ahead that is 24 fetches plus manifest and tails. With it: about 10 on a quiet
    // machine; concurrent kernel reads on a loaded one add a few.
    expect(stats.requests).toBeLessThanOrEqual(20);
    expect(stats.bytesFetched).toBeGreaterThan(big.length / 2);
  });

  it("records the files opened; convert --prioritized-files puts them first", async () => {
    const record = join(dir, "record.txt");
    const m = await mount(ref, "--record", record);
    const empty = await readdir(m.dir);
    expect(empty.length).toBeGreaterThan(0);
    const sh = await run("chroot", [m.dir, "/bin/sh", "-c", "cat /etc/motd /usr/lib/small.txt"]);
    expect(sh.code, describeRun(sh)).toBe(0);
    expect(await m.stop()).toBe(0);
    // Unmounted: the directory is empty again.
    expect(await readdir(m.dir)).toEqual([]);
    const lines = (await readFile(record, "utf8")).trim().split("\n");
    expect(lines[0]).toBe("bin/busybox");
    expect(lines).toContain("etc/motd");
    expect(lines).toContain("usr/lib/small.txt");
    expect(lines.indexOf("etc/motd")).toBeLessThan(lines.indexOf("usr/lib/small.txt"));
    expect(new Set(lines).size).toBe(lines.length);

    const out = join(dir, "prioritized.blob");
    const conv = await seekable(
      "convert",
      join(dir, "l0.tar"),
      out,
      "--prioritized-files",
      record,
      "--allow-missing-prioritized",
    );
    expect(conv.code, describeRun(conv)).toBe(0);
    const toc = await seekable("toc", out);
    const names = JSON.parse(toc.stdout.toString()).entries.map((e: { name: string }) => e.name);
    const mark = names.indexOf(".prefetch.landmark");
    expect(mark).toBeGreaterThan(0);
    for (const p of ["bin/busybox", "etc/motd"]) {
      const i = names.indexOf(p);
      expect(i, p).toBeGreaterThanOrEqual(0);
      expect(i, p).toBeLessThan(mark);
    }
    expect(names.indexOf("usr/lib/big.bin")).toBeGreaterThan(mark);
  });

  it("clears a stale mount left by a killed process", async () => {
    const first = await mount(ref);
    first.proc.kill("SIGKILL");
    await new Promise((r) => first.proc.once("exit", r));
    await expect(lstat(first.dir)).rejects.toMatchObject({ code: "ENOTCONN" });
    const again = await mountAt(first.dir, ref);
    try {
      expect(again.stderr()).toMatch(/cleared a stale mount/);
      expect(await readFile(join(again.dir, "etc/motd"), "utf8")).toBe("welcome to the mount\n");
    } finally {
      expect(await again.stop()).toBe(0);
    }
    expect(await readdir(first.dir)).toEqual([]);
  });

  it("turns a registry failure into EIO on that read and stays usable", async () => {
    const m = await mount(proxyRef, "--no-cache");
    try {
      proxy.rule = (req) =>
        req.headers.range && req.url?.includes("/blobs/")
          ? { kind: "status", status: 500 }
          : undefined;
      await expect(readFile(join(m.dir, "usr/lib/big.bin"))).rejects.toMatchObject({
        code: "EIO",
      });
      const lines = m.stderr().trim().split("\n");
      expect(lines.some((l) => /usr\/lib\/big\.bin/.test(l) && /500/.test(l))).toBe(true);
      proxy.rule = undefined;
      expect(await readFile(join(m.dir, "etc/motd"), "utf8")).toBe("welcome to the mount\n");
      expect(sha(await readFile(join(m.dir, "usr/lib/big.bin")))).toBe(sha(big));
    } finally {
      proxy.rule = undefined;
      expect(await m.stop()).toBe(0);
    }
  });

  it("fetches the prioritized region in one request at mount", async () => {
    const list = join(dir, "prio.txt");
    await writeFile(list, "bin/busybox\netc/motd\n");
    const out = join(dir, "prio.blob");
    const conv = await seekable(
      "convert",
      join(dir, "l0.tar"),
      out,
      "--chunk-size",
      "65536",
      "--prioritized-files",
      list,
      "--json",
    );
    expect(conv.code, describeRun(conv)).toBe(0);
    const blob = await readFile(out);
    const client = new RegistryClient();
    let prio: string;
    try {
      const toc = jsonOut<{ tocDigest: string }>(conv).tocDigest;
      prio = `docker://${await pushImage(client, repo, "prio", [{ blob, toc }])}`;
    } finally {
      await client.close();
    }
    const m = await mount(prio, "--no-cache", "--stats", "--json");
    let code: number | null;
    try {
      expect(JSON.parse(m.stdout)).toMatchObject({ mounted: prio, dir: m.dir, layers: 1 });
      const echo = await run("chroot", [m.dir, "/bin/busybox", "cat", "/etc/motd"]);
      expect(echo.code, describeRun(echo)).toBe(0);
      expect(echo.stdout.toString()).toBe("welcome to the mount\n");
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    const stats = statsOf(m.stderr());
    // The manifest, the layer's tail (TOC), and the prioritized region: nothing else.
    expect(stats.requests).toBe(3);
  });

  it("--background-fetch fills the cache with the whole image", async () => {
    const cacheDir = join(dir, "bg-cache");
    const digests = new Set<string>();
    for (const i of [0, 1]) {
      const toc = await seekable("toc", ref, "--layer", String(i), "--no-cache");
      for (const e of JSON.parse(toc.stdout.toString()).entries)
        if (e.chunkDigest) digests.add(e.chunkDigest);
    }
    const m = await mount(ref, "--background-fetch", "--cache-dir", cacheDir);
    try {
      const count = async () => {
        const root = join(cacheDir, "chunks", "sha256");
        if (!existsSync(root)) return 0;
        let n = 0;
        for (const d of await readdir(root)) {
          n += (await readdir(join(root, d))).filter((f) => !f.endsWith(".tmp")).length;
        }
        return n;
      };
      const deadline = Date.now() + 20_000;
      while ((await count()) < digests.size && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await count()).toBe(digests.size);
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it("starts a dynamically linked program, fetching what the loader opens ahead of it", async () => {
    const { base, app, libs } = dynamicProgram();
    const converted = [await convertItems(dir, "elf0", base), await convertItems(dir, "elf1", app)];
    const pushed = converted.map((c) => ({ blob: c.blob, toc: c.toc }));
    const client = new RegistryClient();
    const elfRef = `docker://${await pushImage(client, repo, "elf", pushed).finally(() => client.close())}`;

    // What opening the image costs, to count the reads alone.
    const idle = await mount(elfRef, "--no-cache", "--stats");
    expect(await idle.stop()).toBe(0);
    const opening = statsOf(idle.stderr()).requests;

    const m = await mount(elfRef, "--no-cache", "--stats");
    let code: number | null;
    try {
      const r = await run("chroot", [m.dir, "/usr/bin/ls", "/usr/bin"]);
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout.toString()).toBe("ls\n");
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    // On demand, each file the loader opens is one more round trip: ls, ld.so, ld.so.cache
    // and every library, one after another. Ahead of it: ls, then one request per layer
    // for ld.so, the cache and ls's own libraries, then one for their dependencies.
    const reads = statsOf(m.stderr()).requests - opening;
    expect(reads).toBeLessThanOrEqual(4);
    expect(reads).toBeLessThan(3 + libs.length);
  });

  it("fails with one clear line when the directory does not exist", async () => {
    const r = await seekable("mount", ref, join(dir, "no-such-dir"));
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/no-such-dir/);
  });
});
