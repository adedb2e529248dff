// Profile-guided prefetch with real FUSE (as root) and the real Debian docker-registry 2.8:
// record a start-up, push the profile as an OCI artifact (subject = the image manifest; this
// registry has no referrers API, so the sha256-<hex> tag fallback), then mount with
// --prefetch auto and check the files came in one batched request per layer, before the
// program asked. Missing and corrupt profiles are a warning and an ordinary lazy mount.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  addReferrer,
  digestOf,
  getManifest,
  parseReference,
  pushBlob,
  putManifest,
  RegistryClient,
  type Repository,
  referrersTag,
} from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, type ProxyLogEntry, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, run, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

const BUSYBOX = "/bin/busybox";
const missing = [
  process.getuid?.() === 0 ? "" : "root",
  existsSync("/dev/fuse") ? "" : "/dev/fuse",
  existsSync(BUSYBOX) ? "" : "busybox-static (/bin/busybox)",
].filter((m) => m !== "");

const ARTIFACT_TYPE = "application/vnd.seekable.profile.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

// Small files the workload reads, each followed by 100 KiB of incompressible padding it does
// not read: every file is its own range, 40 of them in layer 0 (more than one multi-range
// request holds unless the prefetch merges them) and 10 in layer 1.
const libFiles = Array.from({ length: 40 }, (_, i) => `usr/lib/m${i}.txt`);
const appFiles = Array.from({ length: 10 }, (_, i) => `opt/app/c${i}.js`);
const bodyOf = (p: string) => `${p}: ${"x".repeat(150)}\n`;
const layers: TarItem[][] = [
  [
    { name: "bin/" },
    { name: "bin/busybox", body: Buffer.alloc(0), mode: 0o755 }, // filled in beforeAll
    { name: "bin/sh", type: "symlink", linkname: "busybox" },
    { name: "etc/" },
    { name: "etc/motd", body: "welcome to the profiled mount\n" },
    { name: "usr/" },
    { name: "usr/lib/" },
    ...libFiles.flatMap((p, i) => [
      { name: p, body: bodyOf(p) },
      { name: p.replace(".txt", ".pad"), body: pseudoRandom(100 * 1024, i + 1) },
    ]),
  ],
  [
    { name: "opt/" },
    { name: "opt/app/" },
    ...appFiles.flatMap((p, i) => [
      { name: p, body: bodyOf(p) },
      { name: p.replace(".js", ".pad"), body: pseudoRandom(100 * 1024, 100 + i) },
    ]),
  ],
];
const workloadFiles = ["etc/motd", ...libFiles, ...appFiles];
const workloadOutput = workloadFiles
  .map((p) => (p === "etc/motd" ? "welcome to the profiled mount\n" : bodyOf(p)))
  .join("");
/** The start-up: a program from the image reading its files. */
const workload = (mnt: string) =>
  run("chroot", [mnt, "/bin/busybox", "cat", ...workloadFiles.map((p) => `/${p}`)]);

let registry: RunningRegistry;
let proxy: FaultProxy;
let dir: string;
let cleanup: () => Promise<void>;
const repo: Repository = { registry: "", repository: "seekable/profile" };
let layerBlobs: { digest: string; size: number; data: Buffer; toc: string }[] = [];
const mounts = new Set<{ proc: ChildProcess; dir: string }>();

interface Mount {
  dir: string;
  stdout: string;
  stderr(): string;
  /** Index into the proxy log when the process started, and when the mount answered. */
  logStart: number;
  logAt: number;
  /** Waits until stderr matches (20 s at most). */
  waitFor(re: RegExp): Promise<string>;
  stop(): Promise<number | null>;
}

let mountCount = 0;
async function mount(image: string, ...args: string[]): Promise<Mount> {
  const mnt = join(dir, `mnt-${mountCount++}`);
  await mkdir(mnt, { recursive: true });
  const logStart = proxy.log.length;
  const proc = spawn(process.execPath, [seekableCli(), "mount", image, mnt, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const entry = { proc, dir: mnt };
  mounts.add(entry);
  let out = "";
  let err = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`mount did not come up in 20 s: ${err}`));
    }, 20_000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mount exited with ${code}: ${err}`));
    });
    proc.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (!out.includes("\n")) return;
      clearTimeout(timer);
      resolve({
        dir: mnt,
        stdout: out,
        stderr: () => err,
        logStart,
        logAt: proxy.log.length,
        async waitFor(re) {
          const deadline = Date.now() + 20_000;
          while (!re.test(err)) {
            if (Date.now() > deadline) throw new Error(`stderr never matched ${re}: ${err}`);
            await new Promise((r) => setTimeout(r, 25));
          }
          return err.split("\n").find((l) => re.test(l)) as string;
        },
        async stop() {
          proc.kill("SIGTERM");
          const code = await Promise.race([
            exited,
            new Promise<never>((_, rej) =>
              setTimeout(() => rej(new Error("mount did not exit in 20 s")), 20_000),
            ),
          ]);
          mounts.delete(entry);
          return code;
        },
      });
    });
  });
}

async function pushImage(
  client: RegistryClient,
  tag: string,
  configExtra: Record<string, unknown> = {},
): Promise<{ ref: string; digest: string; size: number }> {
  for (const b of layerBlobs) await pushBlob(client, repo, b, b.data);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [] },
      ...configExtra,
    }),
  );
  await pushBlob(client, repo, { digest: sha(config), size: config.length }, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: sha(config),
        size: config.length,
      },
      layers: layerBlobs.map((b) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: b.digest,
        size: b.size,
        annotations: { "containerd.io/snapshot/stargz/toc.digest": b.toc },
      })),
    }),
  );
  const r = `${registry.host}/${repo.repository}:${tag}`;
  const digest = await putManifest(client, parseReference(r), manifest, OCI_MANIFEST);
  return { ref: `docker://${r}`, digest, size: manifest.length };
}

/** A fresh image (its own manifest digest, so its own referrers) under `tag`. */
const image = async (tag: string) => {
  const client = new RegistryClient();
  try {
    return await pushImage(client, tag, { config: { Labels: { tag } } });
  } finally {
    await client.close();
  }
};
const viaProxy = (ref: string) => ref.replace(registry.host, proxy.host);
const isLayerGet = (e: ProxyLogEntry) =>
  e.method === "GET" && layerBlobs.some((b) => e.url.endsWith(`/blobs/${b.digest}`));

/** Records the workload's start-up profile of an image (mount --record). */
async function record(ref: string, file: string): Promise<string[]> {
  const m = await mount(ref, "--record", file);
  try {
    const w = await workload(m.dir);
    expect(w.code, describeRun(w)).toBe(0);
  } finally {
    expect(await m.stop()).toBe(0);
  }
  return (await readFile(file, "utf8")).trim().split("\n");
}

async function pushProfile(ref: string, file: string, ...args: string[]) {
  const r = await seekable("profile", "push", ref, file, "--json", ...args);
  expect(r.code, describeRun(r)).toBe(0);
  return jsonOut<{ digest: string; subject: { digest: string }; via: string; tag?: string }>(r);
}

/** The fallback tag's index of a subject (through a fresh client). */
async function tagIndex(subject: string) {
  const client = new RegistryClient();
  try {
    return await getManifest(client, { ...repo, tag: referrersTag(subject) });
  } finally {
    await client.close();
  }
}

/** Mounts with a profile that must not be used: one warning line, an ordinary lazy mount. */
async function expectLazyWithWarning(image: string, warning: RegExp, ...args: string[]) {
  const m = await mount(image, ...args);
  let code: number | null;
  try {
    await m.waitFor(/warning/);
    expect(await readFile(join(m.dir, "etc/motd"), "utf8")).toBe("welcome to the profiled mount\n");
    const w = await workload(m.dir);
    expect(w.code, describeRun(w)).toBe(0);
    expect(w.stdout.toString()).toBe(workloadOutput);
  } finally {
    code = await m.stop();
  }
  expect(code).toBe(0);
  const lines = m.stderr().trim().split("\n");
  expect(
    lines.filter((l) => /warning/.test(l)),
    m.stderr(),
  ).toHaveLength(1);
  expect(lines.find((l) => /warning/.test(l))).toMatch(warning);
  expect(m.stderr()).not.toMatch(/prefetched/);
}

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(`cannot test real FUSE mounts: missing ${missing.join(", ")}`);
  registry = await startRegistry();
  repo.registry = registry.host;
  proxy = await startFaultProxy(registry.url);
  const tmp = await makeTempDir("profile");
  dir = tmp.path;
  cleanup = tmp.remove;
  (layers[0][1] as TarItem).body = await readFile(BUSYBOX);
  layerBlobs = [];
  for (let i = 0; i < layers.length; i++) {
    const tarPath = join(dir, `l${i}.tar`);
    await writeFile(tarPath, await makeTar(layers[i]));
    const out = join(dir, `l${i}.blob`);
    const r = await seekable("convert", tarPath, out, "--chunk-size", "65536", "--json");
    expect(r.code, describeRun(r)).toBe(0);
    const data = await readFile(out);
    layerBlobs.push({
      digest: sha(data),
      size: data.length,
      data,
      toc: jsonOut<{ tocDigest: string }>(r).tocDigest,
    });
  }
}, 180_000);

afterAll(async () => {
  for (const m of mounts) {
    m.proc.kill("SIGKILL");
    try {
      execFileSync("fusermount", ["-u", "-z", m.dir], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
  await proxy?.close();
  await registry?.stop();
  await cleanup?.();
});

describe("profile-guided prefetch (real FUSE, real registry)", () => {
  it("record -> profile push -> mount --prefetch auto: one request per layer, none on use", async () => {
    const img = await image("roundtrip");
    const file = join(dir, "roundtrip.txt");
    const lines = await record(img.ref, file);
    expect(lines[0]).toBe("bin/busybox");
    expect(lines).toEqual(["bin/busybox", ...workloadFiles]);

    const pushed = await pushProfile(img.ref, file);
    expect(pushed.subject.digest).toBe(img.digest);
    expect(pushed.via).toBe("tag");
    // Debian's registry 2.8 has no referrers API: the spec's tag fallback holds an index.
    const hex = img.digest.slice("sha256:".length);
    expect(pushed.tag).toBe(`sha256-${hex}`);
    const index = await tagIndex(img.digest);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.json.manifests).toEqual([
      expect.objectContaining({
        mediaType: OCI_MANIFEST,
        digest: pushed.digest,
        artifactType: ARTIFACT_TYPE,
      }),
    ]);
    const client = new RegistryClient();
    try {
      const art = await getManifest(client, { ...repo, digest: pushed.digest });
      expect(art.json).toMatchObject({
        mediaType: OCI_MANIFEST,
        artifactType: ARTIFACT_TYPE,
        config: { mediaType: "application/vnd.oci.empty.v1+json", size: 2 },
        subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.size },
      });
    } finally {
      await client.close();
    }

    const m = await mount(viaProxy(img.ref), "--prefetch", "auto", "--no-cache", "--stats");
    let code: number | null;
    let prefetchGets: ProxyLogEntry[];
    let beforeWorkload: number;
    try {
      const line = await m.waitFor(/prefetched/);
      expect(line).toContain(pushed.digest);
      expect(line).toMatch(/tag fallback/);
      expect(line).toMatch(/prefetched 52 files/); // busybox, motd, 40 + 10
      // After the mount answered, the layers were read only by the prefetch: at most one
      // batched (multi-range) request per layer.
      prefetchGets = proxy.log.slice(m.logAt).filter(isLayerGet);
      expect(prefetchGets.length).toBeGreaterThanOrEqual(1);
      expect(prefetchGets.length).toBeLessThanOrEqual(layerBlobs.length);
      expect(prefetchGets.some((e) => (e.range ?? "").includes(","))).toBe(true);
      beforeWorkload = proxy.log.length;
      const w = await workload(m.dir);
      expect(w.code, describeRun(w)).toBe(0);
      expect(w.stdout.toString()).toBe(workloadOutput);
      // The program's reads were all served from what the prefetch brought.
      expect(proxy.log.slice(beforeWorkload)).toEqual([]);
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    const stats = statsOf(m.stderr());
    // --stats counts every request of the process, all of which went through the proxy:
    // opening (manifest, TOC tails), finding the profile (referrers 404, the image manifest,
    // the tag's index, the artifact, the profile blob), the prefetch, and nothing more.
    const mine = proxy.log.slice(m.logStart);
    expect(stats.requests).toBe(mine.length);
    expect(beforeWorkload - m.logStart).toBe(stats.requests);
    const profileGets = proxy.log
      .slice(m.logAt)
      .filter((e) => !isLayerGet(e) && e.url.includes("/blobs/"));
    expect(profileGets).toHaveLength(1);
    expect(profileGets.length + prefetchGets.length).toBeLessThanOrEqual(1 + layerBlobs.length);
  });
});
