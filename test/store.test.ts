// `seekable store` (an Additional Layer Store) with real components: the real registry, real
// FUSE, and Debian's podman + runc pulling and running images through it. The layout and the
// `info` encoding are the reference store's (stargz-snapshotter `store`); a layer that is not
// eStargz is pulled the ordinary way; registry faults are EIO on the read; SIGTERM unmounts.
// `--prefetch FILE|auto` fetches a profile's files when an image's layers resolve, and
// `--release-after` frees layers nothing uses (use count, open files, recent requests).

import { type ChildProcess, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import {
  lstat,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rm,
  rmdir,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  parseReference,
  pushBlob,
  putManifest,
  RegistryClient,
  type Repository,
} from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertItems } from "./helpers/convert.js";
import { dynamicProgram } from "./helpers/dynamic-program.js";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { startForeground } from "./helpers/foreground.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, type RunResult, run, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

const BUSYBOX = "/bin/busybox";
const has = (c: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${c}`]);
    return true;
  } catch {
    return false;
  }
};
/** What these tests need; .ci/run installs the Debian packages. Missing is a failure. */
const missing = [
  process.getuid?.() === 0 ? "" : "root",
  existsSync("/dev/fuse") ? "" : "/dev/fuse",
  existsSync(BUSYBOX) ? "" : "busybox-static (/bin/busybox)",
  has("fusermount") ? "" : "fuse3 (fusermount)",
  has("getfattr") ? "" : "attr (getfattr)",
  has("podman") ? "" : "podman",
  has("runc") ? "" : "runc",
].filter((m) => m !== "");

const data = pseudoRandom(600 * 1024 + 3, 11);
const lower: TarItem[] = [
  { name: "bin/" },
  { name: "bin/busybox", body: Buffer.alloc(0), mode: 0o755 }, // filled in beforeAll
  { name: "bin/sh", type: "symlink", linkname: "busybox" },
  { name: "etc/" },
  { name: "etc/motd", body: "welcome to the store\n" },
  { name: "etc/gone", body: "removed above" },
  { name: "opt/" },
  { name: "opt/old/" },
  { name: "opt/old/x", body: "hidden by opaque" },
  { name: "usr/" },
  { name: "usr/data.bin", body: data },
];
const upper: TarItem[] = [
  { name: "etc/" },
  { name: "etc/.wh.gone", body: "" },
  { name: "etc/upper", body: "from the upper layer\n" },
  { name: "opt/" },
  { name: "opt/old/" },
  { name: "opt/old/.wh..wh..opq", body: "" },
  { name: "opt/old/y", body: "y" },
];
/** A layer pushed as plain tar+gzip (not eStargz) in the mixed image. */
const plain: TarItem[] = [{ name: "etc/" }, { name: "etc/plain", body: "plain gzip layer\n" }];

interface Layer {
  blob: Buffer;
  digest: string;
  diffId: string;
  toc?: string;
  uncompressedSize?: number;
}

let registry: RunningRegistry;
let proxy: FaultProxy;
let work: string;
let storeDir: string;
let store: { proc: ChildProcess; stderr(): string; exited: Promise<number | null> } | undefined;
let podmanEnv: NodeJS.ProcessEnv;
let estargz: Layer[];
let plainLayer: Layer;
/** The images, named through the fault proxy (podman and the store both go through it). */
let image: string;
let mixed: string;
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/store" } satisfies Repository;

async function pushImage(client: RegistryClient, tag: string, layers: Layer[]): Promise<string> {
  for (const l of layers)
    await pushBlob(client, repo, { digest: l.digest, size: l.blob.length }, l.blob);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  await pushBlob(client, repo, { digest: sha(config), size: config.length }, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: sha(config),
        size: config.length,
      },
      layers: layers.map((l) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: l.digest,
        size: l.blob.length,
        annotations: l.toc
          ? {
              "containerd.io/snapshot/stargz/toc.digest": l.toc,
              "io.containers.estargz.uncompressed-size": String(l.uncompressedSize),
            }
          : undefined,
      })),
    }),
  );
  await putManifest(
    client,
    parseReference(`${registry.host}/${repo.repository}:${tag}`),
    manifest,
    "application/vnd.oci.image.manifest.v1+json",
  );
  return `${proxy.host}/${repo.repository}:${tag}`;
}

function startStore(): Promise<NonNullable<typeof store>> {
  return startForeground("store", [
    "store",
    storeDir,
    "--cache-dir",
    join(work, "cache"),
    "--stats",
  ]);
}

/** containers/storage's configuration: overlay under `dir`, the layer store at `store`. */
async function storageConf(dir: string, store: string): Promise<NodeJS.ProcessEnv> {
  await writeFile(
    join(dir, "storage.conf"),
    [
      "[storage]",
      'driver = "overlay"',
      `runroot = "${join(dir, "run")}"`,
      `graphroot = "${join(dir, "root")}"`,
      "",
      "[storage.options]",
      `additionallayerstores = ["${store}:ref"]`,
      "",
    ].join("\n"),
  );
  return { ...process.env, CONTAINERS_STORAGE_CONF: join(dir, "storage.conf") };
}

function podman(...args: string[]): Promise<RunResult> {
  return podmanWith(podmanEnv, ...args);
}

function podmanWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<RunResult> {
  return run("podman", ["--runtime", "runc", "--cgroup-manager=cgroupfs", ...args], {
    env,
    timeoutMs: 180_000,
  });
}

function podmanRun(img: string, ...cmd: string[]): Promise<RunResult> {
  return podmanRunWith(podmanEnv, img, ...cmd);
}

function podmanRunWith(env: NodeJS.ProcessEnv, img: string, ...cmd: string[]): Promise<RunResult> {
  return podmanWith(
    env,
    "run",
    "--rm",
    "--network=none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    img,
    ...cmd,
  );
}

/** The store's directory of a layer of an image. */
const layerDir = (img: string, digest: string, dir = storeDir) =>
  join(dir, Buffer.from(img).toString("base64"), digest);

/** Another store, with its own directory, cache and podman storage; `close` cleans it all. */
interface ExtraStore {
  dir: string;
  env: NodeJS.ProcessEnv;
  fg: Awaited<ReturnType<typeof startForeground>>;
  close(): Promise<void>;
}

const extras: ExtraStore[] = [];

async function extraStore(name: string, ...args: string[]): Promise<ExtraStore> {
  const base = join(work, name);
  const dir = join(base, "store");
  await mkdir(dir, { recursive: true });
  const env = await storageConf(base, dir);
  const fg = await startForeground(`store ${name}`, [
    "store",
    dir,
    "--cache-dir",
    join(base, "cache"),
    ...args,
  ]);
  const extra: ExtraStore = {
    dir,
    env,
    fg,
    close: async () => {
      await podmanWith(env, "rmi", "-a", "-f").catch(() => undefined);
      if (fg.proc.exitCode === null) expect(await fg.stop()).toBe(0);
    },
  };
  extras.push(extra);
  return extra;
}

/** `s` matched literally in a RegExp. */
const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Requests for the eStargz layers' blobs since log entry `from`. */
const blobRequests = (from: number) =>
  proxy.log
    .slice(from)
    .filter((e) => /\/blobs\//.test(e.url) && estargz.some((l) => e.url.endsWith(l.digest)));

/** Waits until `re` matches the store's stderr (20 s at most); the text. */
async function waitFor(stderr: () => string, re: RegExp, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  while (!re.test(stderr())) {
    if (Date.now() > deadline) throw new Error(`no ${re} on the store's stderr:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return stderr();
}

/** The files `PROFILED_RUN` reads, as `mount --record` would write them. */
const PROFILE = ["bin/busybox", "etc/motd", "etc/upper", "usr/data.bin"];
const PROFILED_RUN = ["sh", "-c", "cat /etc/motd /etc/upper /usr/data.bin | busybox md5sum"];

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(`cannot test the layer store: missing ${missing.join(", ")}`);
  registry = await startRegistry();
  repo.registry = registry.host;
  proxy = await startFaultProxy(registry.url);
  // Overlay needs a graphroot on a real file system (not on the overlay /work may be).
  work = await mkdtemp(join(tmpdir(), "seekable-store-"));
  storeDir = join(work, "store");
  await mkdir(storeDir);
  (lower[1] as TarItem).body = await readFile(BUSYBOX);
  estargz = [];
  for (const [i, items] of [lower, upper].entries())
    estargz.push(await convertItems(work, `l${i}`, items, "--chunk-size", "65536"));
  const plainTar = await makeTar(plain);
  const plainBlob = gzipSync(plainTar);
  plainLayer = { blob: plainBlob, digest: sha(plainBlob), diffId: sha(plainTar) };
  const client = new RegistryClient();
  try {
    image = await pushImage(client, "v1", estargz);
    mixed = await pushImage(client, "mixed", [plainLayer, estargz[0]]);
  } finally {
    await client.close();
  }
  podmanEnv = await storageConf(work, storeDir);
  store = await startStore();
});

afterAll(async () => {
  for (const x of extras) {
    await podmanWith(x.env, "rmi", "-a", "-f").catch(() => undefined);
    if (x.fg.proc.exitCode === null) {
      x.fg.proc.kill("SIGTERM");
      await Promise.race([x.fg.exited, new Promise((r) => setTimeout(r, 20_000))]);
    }
    try {
      execFileSync("fusermount", ["-u", "-z", x.dir], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
  if (podmanEnv) await podman("rmi", "-a", "-f").catch(() => undefined);
  if (store && store.proc.exitCode === null) {
    store.proc.kill("SIGTERM");
    await Promise.race([store.exited, new Promise((r) => setTimeout(r, 20_000))]);
  }
  if (storeDir) {
    try {
      execFileSync("fusermount", ["-u", "-z", storeDir], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
  if (work && !process.env.KEEP_TEST_FILES) {
    // Leftover overlay mounts of podman's under our graphroot only.
    const mounts = (await readFile("/proc/self/mounts", "utf8"))
      .split("\n")
      .map((l) => l.split(" ")[1])
      .filter((m) => m?.startsWith(`${work}/`));
    for (const m of mounts.reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {
        // gone already
      }
    }
    await rm(work, { recursive: true, force: true });
  }
  await proxy?.close();
  await registry?.stop();
}, 120_000);

describe("seekable store", () => {
  it("lays layers out as the reference store does: info, diff with overlay whiteouts, blob, use", async () => {
    const l0 = layerDir(image, estargz[0].digest);
    const l1 = layerDir(image, estargz[1].digest);
    // info: the reference's encoding (Go encoding/json, fields in its order, a newline).
    const info = await readFile(join(l0, "info"), "utf8");
    expect(info).toBe(
      `${JSON.stringify({
        "compressed-diff-digest": estargz[0].digest,
        "compressed-size": estargz[0].blob.length,
        "diff-digest": estargz[0].diffId,
        "diff-size": estargz[0].uncompressedSize,
        compression: 2,
      })}\n`,
    );
    expect(await readFile(join(l0, "diff/etc/motd"), "utf8")).toBe("welcome to the store\n");
    // Read by another process, as podman reads (the proxy lives in this one).
    const cmp = await run("cmp", [join(l0, "diff/bin/busybox"), BUSYBOX]);
    expect(cmp.code, describeRun(cmp)).toBe(0);
    // The layer's own whiteouts, as overlayfs reads them from a lower directory.
    const wh = await lstat(join(l1, "diff/etc/gone"));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    const opq = await run("getfattr", [
      "--absolute-names",
      "--only-values",
      "-n",
      "trusted.overlay.opaque",
      join(l1, "diff/opt/old"),
    ]);
    expect(opq.stdout.toString(), describeRun(opq)).toBe("y");
    await expect(lstat(join(l1, "diff/opt/old/.wh..wh..opq"))).rejects.toMatchObject({
      code: "ENOENT",
    });
    // blob: the compressed layer, byte for byte.
    expect(sha(await readFile(join(l1, "blob")))).toBe(estargz[1].digest);
    // use: counted and answered ENOENT, as containers/storage expects.
    await expect(writeFile(join(l0, "use"), "")).rejects.toMatchObject({ code: "ENOENT" });
    // Not base64 of a reference / not a digest: EINVAL, as the reference answers.
    await expect(lstat(join(storeDir, "not base64!"))).rejects.toMatchObject({ code: "EINVAL" });
    await expect(
      lstat(join(storeDir, Buffer.from(image).toString("base64"), "nope")),
    ).rejects.toMatchObject({ code: "EINVAL" });
  });

  it("podman pulls without downloading a layer and runs a program from the lazy layers", async () => {
    const before = proxy.log.length;
    const pull = await podman("--log-level=debug", "pull", "--tls-verify=false", image);
    expect(pull.code, describeRun(pull, 0)).toBe(0);
    for (const l of estargz) {
      expect(pull.stderr).toMatch(new RegExp(`Skipping blob ${l.digest} \\(already present\\)`));
    }
    // No whole-blob GET of a layer went to the registry (only ranges, by the store).
    const wholeGets = proxy.log
      .slice(before)
      .filter((e) => e.method === "GET" && /\/blobs\//.test(e.url) && !e.range)
      .filter((e) => estargz.some((l) => e.url.endsWith(l.digest)));
    expect(wholeGets).toEqual([]);
    const r = await podmanRun(
      image,
      "sh",
      "-c",
      "cat /etc/motd /etc/upper; ls /etc /opt/old; busybox true && echo ran",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const out = r.stdout.toString();
    expect(out).toContain("welcome to the store\nfrom the upper layer\n");
    expect(out).not.toMatch(/\bgone\b/); // whited out by the upper layer
    expect(out).toMatch(/\by\b/);
    expect(out).not.toMatch(/\bx\b/); // hidden by the opaque directory
    expect(out).toContain("ran\n");
  });

  it("a layer that is not eStargz is pulled the ordinary way and the container runs", async () => {
    const pull = await podman("--log-level=debug", "pull", "--tls-verify=false", mixed);
    expect(pull.code, describeRun(pull, 0)).toBe(0);
    expect(pull.stderr).toMatch(
      new RegExp(`Skipping blob ${estargz[0].digest} \\(already present\\)`),
    );
    expect(pull.stderr).not.toMatch(new RegExp(`Skipping blob ${plainLayer.digest}`));
    const r = await podmanRun(mixed, "sh", "-c", "cat /etc/plain /etc/motd");
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toBe("plain gzip layer\nwelcome to the store\n");
    // The store said why, once, and stays up.
    expect(store?.stderr()).toMatch(/not eStargz/);
  });

  it("an unconverted gzip image indexed with `seekable index` is served lazily: podman downloads no layer", async () => {
    // The same files as plain gzip layers (what most registries hold), indexed beside the
    // image: its digests stay as they are.
    const layers: Layer[] = [];
    for (const items of [lower, upper]) {
      const tar = await makeTar(items);
      const blob = gzipSync(tar);
      layers.push({ blob, digest: sha(blob), diffId: sha(tar) });
    }
    const client = new RegistryClient();
    let unconverted: string;
    try {
      unconverted = await pushImage(client, "unconverted", layers);
    } finally {
      await client.close();
    }
    const ix = await seekable(
      "index",
      `docker://${unconverted.replace(proxy.host, registry.host)}`,
      "--min-layer-size",
      "0",
      "--span-size",
      "65536",
      "--json",
    );
    expect(ix.code, describeRun(ix)).toBe(0);
    expect(jsonOut<{ indexed: unknown[] }>(ix).indexed).toHaveLength(2);
    const before = proxy.log.length;
    const pull = await podman("--log-level=debug", "pull", "--tls-verify=false", unconverted);
    expect(pull.code, describeRun(pull, 0)).toBe(0);
    for (const l of layers)
      expect(pull.stderr).toMatch(new RegExp(`Skipping blob ${l.digest} \\(already present\\)`));
    const wholeGets = proxy.log
      .slice(before)
      .filter((e) => e.method === "GET" && /\/blobs\//.test(e.url) && !e.range)
      .filter((e) => layers.some((l) => e.url.endsWith(l.digest)));
    expect(wholeGets).toEqual([]);
    const r = await podmanRun(
      unconverted,
      "sh",
      "-c",
      "cat /etc/motd /etc/upper; ls /etc /opt/old; busybox md5sum /usr/data.bin; busybox true && echo ran",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const out = r.stdout.toString();
    expect(out).toContain("welcome to the store\nfrom the upper layer\n");
    expect(out).not.toMatch(/\bgone\b/); // whited out by the upper layer
    expect(out).toContain(createHash("md5").update(data).digest("hex"));
    expect(out).toContain("ran\n");
  });

  it("podman save of the lazily pulled image gives the original layer digests", async () => {
    const out = join(work, "saved.tar");
    const r = await podman("save", "-o", out, image);
    expect(r.code, describeRun(r)).toBe(0);
    const dir = join(work, "saved");
    await mkdir(dir);
    execFileSync("tar", ["-C", dir, "-xf", out]);
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as {
      Layers: string[];
    }[];
    const digests = [];
    for (const f of manifest[0].Layers) digests.push(sha(await readFile(join(dir, f))));
    expect(digests).toEqual(estargz.map((l) => l.diffId));
  });

  it("podman runs a dynamically linked program with ld.so and its libraries fetched ahead of the loader", async () => {
    const { base, app, libs, program } = dynamicProgram();
    const layers: Layer[] = [
      await convertItems(work, "elf0", base),
      await convertItems(work, "elf1", app),
    ];
    const client = new RegistryClient();
    const elf = await pushImage(client, "elf", layers).finally(() => client.close());
    const pull = await podman("pull", "--tls-verify=false", elf);
    expect(pull.code, describeRun(pull, 0)).toBe(0);
    const from = proxy.log.length;
    const r = await podmanRun(elf, program, "/usr/bin");
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toBe("ls\n");
    const reads = proxy.log
      .slice(from)
      .filter((e) => /\/blobs\//.test(e.url) && layers.some((l) => e.url.endsWith(l.digest)));
    // On demand: ls, ld.so, ld.so.cache and each library, one round trip after another.
    // Ahead of the loader: ls, then ld.so, the cache and ls's libraries in one request for
    // their layer, then their own dependencies.
    expect(reads.length).toBeLessThanOrEqual(4);
    expect(reads.length).toBeLessThan(3 + libs.length);
  });

  it("a registry failure is EIO on that read, one line on stderr, and the store stays usable", async () => {
    const file = join(layerDir(image, estargz[0].digest), "diff/usr/data.bin");
    proxy.rule = (req) =>
      req.url?.includes("/blobs/") ? { kind: "status", status: 500 } : undefined;
    // Read by other processes (the proxy lives in this one).
    try {
      const failed = await run("cat", [file]);
      expect(failed.code, describeRun(failed, 0)).not.toBe(0);
      expect(failed.stderr).toMatch(/Input\/output error/);
    } finally {
      proxy.rule = undefined;
    }
    expect(store?.stderr()).toMatch(/read of .*usr\/data\.bin failed/);
    const again = await run("cat", [file]);
    expect(again.code, describeRun(again, 0)).toBe(0);
    expect(again.stdout.equals(data)).toBe(true);
    const r = await podmanRun(image, "sh", "-c", "cat /etc/upper");
    expect(r.code, describeRun(r)).toBe(0);
  });

  it("--prefetch FILE fetches the profile's files as an image's layers resolve (one batched read per layer): the run needs fewer requests", async () => {
    const want = `${createHash("md5")
      .update(Buffer.concat([Buffer.from("welcome to the store\nfrom the upper layer\n"), data]))
      .digest("hex")}  -\n`;
    // Without a profile, in a store of its own: the run fetches what it reads.
    const lazy = await extraStore("lazy");
    let lazyRun: number;
    try {
      const pull = await podmanWith(lazy.env, "pull", "--tls-verify=false", image);
      expect(pull.code, describeRun(pull, 0)).toBe(0);
      const from = proxy.log.length;
      const r = await podmanRunWith(lazy.env, image, ...PROFILED_RUN);
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout.toString()).toBe(want);
      lazyRun = blobRequests(from).length;
    } finally {
      await lazy.close();
    }
    expect(lazyRun).toBeGreaterThan(0);

    const file = join(work, "profile.txt");
    await writeFile(file, PROFILE.map((p) => `/${p}\n`).join(""));
    const x = await extraStore("prefetch-file", "--prefetch", file);
    try {
      const pull = await podmanWith(x.env, "pull", "--tls-verify=false", image);
      expect(pull.code, describeRun(pull, 0)).toBe(0);
      // podman's pull resolves the layers: the prefetch runs then, before the container.
      const err = await waitFor(x.fg.stderr, /prefetched \d+ files of profile/);
      expect(err).toMatch(
        new RegExp(
          `prefetched 4 files of profile ${literal(file)} into 2 layers of ${literal(image)}: \\d+ chunks, [\\d.]+ [KM]iB in 2 batched reads`,
        ),
      );
      const from = proxy.log.length;
      const r = await podmanRunWith(x.env, image, ...PROFILED_RUN);
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout.toString()).toBe(want);
      const prefetchedRun = blobRequests(from).length;
      expect(prefetchedRun).toBeLessThan(lazyRun);
      expect(prefetchedRun).toBe(0); // the profile has every file the run reads
      // The same profile for every image: another one gets the paths it has, from its lazy
      // layers (its plain layer is pulled by podman); here all in the cache already.
      const other = await podmanWith(x.env, "pull", "--tls-verify=false", mixed);
      expect(other.code, describeRun(other, 0)).toBe(0);
      await waitFor(
        x.fg.stderr,
        new RegExp(
          `prefetched 3 files of profile ${literal(file)} into 1 layers of ${literal(mixed)}: 0 chunks, 0\\.0 KiB in 0 batched reads \\(\\d+ chunks already cached, 1 of its paths not in the image's lazy layers\\)`,
        ),
      );
    } finally {
      await x.close();
    }
  });

  it("--prefetch auto uses the profile pushed beside each image; an image without one is read on demand", async () => {
    const file = join(work, "profile-auto.txt");
    await writeFile(file, `${PROFILE.join("\n")}\n`);
    const pushed = await seekable(
      "profile",
      "push",
      `docker://${registry.host}/${repo.repository}:v1`,
      file,
      "--json",
    );
    expect(pushed.code, describeRun(pushed)).toBe(0);
    const artifact = jsonOut<{ digest: string }>(pushed).digest;
    const x = await extraStore("prefetch-auto", "--prefetch", "auto");
    try {
      const pull = await podmanWith(x.env, "pull", "--tls-verify=false", image);
      expect(pull.code, describeRun(pull, 0)).toBe(0);
      await waitFor(
        x.fg.stderr,
        new RegExp(
          `prefetched 4 files of profile ${artifact} \\(found by the (tag fallback|referrers API)\\) into 2 layers of ${literal(image)}: \\d+ chunks, .* in 2 batched reads`,
        ),
      );
      const from = proxy.log.length;
      const r = await podmanRunWith(x.env, image, ...PROFILED_RUN);
      expect(r.code, describeRun(r)).toBe(0);
      expect(blobRequests(from)).toEqual([]);
      // No profile beside this one: a line, and the store serves it on demand.
      const other = await podmanWith(x.env, "pull", "--tls-verify=false", mixed);
      expect(other.code, describeRun(other, 0)).toBe(0);
      await waitFor(x.fg.stderr, new RegExp(`no profile stored for ${literal(mixed)}`));
      const m = await podmanRunWith(x.env, mixed, "sh", "-c", "cat /etc/plain /etc/motd");
      expect(m.code, describeRun(m)).toBe(0);
      expect(m.stdout.toString()).toBe("plain gzip layer\nwelcome to the store\n");
      expect(x.fg.stderr()).not.toMatch(/warning/);
    } finally {
      await x.close();
    }
  });

  it("--release-after: a layer no use counts, with no file open, is freed once idle and resolved again on the next access", async () => {
    const x = await extraStore("release", "--release-after", "1");
    const released = (digest: string) => new RegExp(`released layer ${digest}: not in use`);
    try {
      const l0 = layerDir(image, estargz[0].digest, x.dir);
      const l1 = layerDir(image, estargz[1].digest, x.dir);
      // Resolves both layers of the image.
      expect(await readFile(join(l0, "diff/etc/motd"), "utf8")).toBe("welcome to the store\n");
      // In use: `use` of the lower layer counted, a file of the upper one held open.
      await expect(writeFile(join(l0, "use"), "")).rejects.toMatchObject({ code: "ENOENT" });
      const fh = await open(join(l1, "diff/etc/upper"), "r");
      try {
        await new Promise((r) => setTimeout(r, 3000));
        expect(x.fg.stderr()).not.toMatch(/released layer/);
        const { bytesRead, buffer } = await fh.read(Buffer.alloc(64), 0, 64, 0);
        expect(buffer.subarray(0, bytesRead).toString()).toBe("from the upper layer\n");
      } finally {
        await fh.close();
      }
      await waitFor(x.fg.stderr, released(estargz[1].digest));
      expect(x.fg.stderr()).not.toMatch(released(estargz[0].digest));
      // Removing the layer directory (containers/storage, when done with it) uncounts it.
      await expect(rmdir(l0)).rejects.toMatchObject({ code: "ENOENT" });
      await waitFor(x.fg.stderr, released(estargz[0].digest));
      // The next access resolves it again: its TOC is fetched anew, files read as before.
      const from = proxy.log.length;
      const st = await stat(join(l0, "diff/usr/data.bin"));
      expect(st.size).toBe(data.length);
      expect((await readFile(join(l0, "diff/usr/data.bin"))).equals(data)).toBe(true);
      expect(blobRequests(from).some((e) => e.url.endsWith(estargz[0].digest))).toBe(true);
      // Both resolved again (a layer brings its image's others), so both freed again.
      const count = () => (x.fg.stderr().match(/released layer/g) ?? []).length;
      const releases = async (n: number) => {
        const deadline = Date.now() + 20_000;
        while (count() < n && Date.now() < deadline)
          await new Promise((res) => setTimeout(res, 100));
        expect(count()).toBe(n);
      };
      await releases(4);
      // Through podman: its pull counts a `use` of each layer (nothing is freed while the
      // image is there), removing the image uncounts them: both layers are freed, and the
      // store serves the image again afterwards.
      const before = count();
      const pull = await podmanWith(x.env, "pull", "--tls-verify=false", image);
      expect(pull.code, describeRun(pull, 0)).toBe(0);
      const r = await podmanRunWith(x.env, image, "sh", "-c", "sleep 2; cat /etc/upper");
      expect(r.code, describeRun(r)).toBe(0);
      expect(count()).toBe(before); // idle for 2 s, but in use
      const rmi = await podmanWith(x.env, "rmi", "-f", image);
      expect(rmi.code, describeRun(rmi)).toBe(0);
      await releases(before + 2);
      const again = await podmanWith(x.env, "pull", "--tls-verify=false", image);
      expect(again.code, describeRun(again, 0)).toBe(0);
      const r2 = await podmanRunWith(x.env, image, "sh", "-c", "cat /etc/motd /etc/upper");
      expect(r2.code, describeRun(r2)).toBe(0);
      expect(r2.stdout.toString()).toBe("welcome to the store\nfrom the upper layer\n");
    } finally {
      await x.close();
    }
  });

  it("SIGTERM unmounts and exits 0 with the --stats line", async () => {
    const s = store as NonNullable<typeof store>;
    s.proc.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    const mounts = await readFile("/proc/self/mounts", "utf8");
    expect(mounts).not.toContain(` ${storeDir} `);
    expect(s.stderr()).toMatch(/"requests":\d+,"bytesFetched":\d+/);
  });
});
