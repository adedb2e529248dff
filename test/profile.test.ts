// Profile-guided prefetch with real FUSE (as root) and the real Debian docker-registry 2.8:
// record a start-up, push the profile as an OCI artifact (subject = the image manifest; this
// registry has no referrers API, so the sha256-<hex> tag fallback), then mount with
// --prefetch auto and check the files came in one batched request per layer, before the
// program asked. Missing and corrupt profiles are a warning and an ordinary lazy mount.

import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeProfile, newestReferrer, parseProfile } from "@seekable/image";
import {
  addReferrer,
  digestOf,
  getManifest,
  mergeSpans,
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
import { startForeground } from "./helpers/foreground.js";
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
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/profile" } satisfies Repository;
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
  const entry = { proc: undefined as unknown as ChildProcess, dir: mnt };
  const fg = await startForeground("mount", ["mount", image, mnt, ...args], (proc) => {
    entry.proc = proc;
    mounts.add(entry);
  });
  return {
    dir: mnt,
    stdout: fg.stdout,
    stderr: fg.stderr,
    logStart,
    logAt: proxy.log.length,
    async waitFor(re) {
      const deadline = Date.now() + 20_000;
      while (!re.test(fg.stderr())) {
        if (Date.now() > deadline) throw new Error(`stderr never matched ${re}: ${fg.stderr()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return fg
        .stderr()
        .split("\n")
        .find((l) => re.test(l)) as string;
    },
    async stop() {
      const code = await fg.stop();
      mounts.delete(entry);
      return code;
    },
  };
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

/** A read of a layer's end (the footer and TOC, at open). */
const isTail = (e: ProxyLogEntry) => {
  const b = layerBlobs.find((l) => e.url.endsWith(`/blobs/${l.digest}`));
  return (
    b !== undefined &&
    /^bytes=(\d+-)?\d*$/.test(e.range ?? "") &&
    (e.range?.startsWith("bytes=-") ||
      e.range?.endsWith(`-${b.size - 1}`) ||
      e.range?.endsWith("-"))
  );
};

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
      // Besides opening them (the tail with the TOC), the layers were read only by the
      // prefetch: at most one batched (multi-range) request per layer.
      prefetchGets = proxy.log.slice(m.logStart).filter((e) => isLayerGet(e) && !isTail(e));
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
      .slice(m.logStart)
      .filter((e) => !isLayerGet(e) && e.url.includes("/blobs/"));
    expect(profileGets).toHaveLength(1);
    expect(profileGets.length + prefetchGets.length).toBeLessThanOrEqual(1 + layerBlobs.length);
  });

  it("--prefetch FILE: reads of chunks being prefetched wait for them instead of fetching", async () => {
    const img = await image("local");
    const file = join(dir, "local.txt");
    await writeFile(file, `${["bin/busybox", ...workloadFiles].join("\n")}\n`);
    // The batched requests take a while: the program starts meanwhile and must wait for them.
    proxy.rule = (req) =>
      (req.headers.range ?? "").includes(",") ? { kind: "delay", ms: 1500 } : undefined;
    const m = await mount(viaProxy(img.ref), "--prefetch", file, "--no-cache");
    let code: number | null;
    try {
      const w = await workload(m.dir);
      expect(w.code, describeRun(w)).toBe(0);
      expect(w.stdout.toString()).toBe(workloadOutput);
      const line = await m.waitFor(/prefetched/);
      expect(line).toContain(file);
      const gets = proxy.log.slice(m.logAt).filter(isLayerGet);
      expect(gets.length).toBeLessThanOrEqual(layerBlobs.length);
      expect(gets.every((e) => e.fault === "delay")).toBe(true);
    } finally {
      proxy.rule = undefined;
      code = await m.stop();
    }
    expect(code).toBe(0);
  });

  it("two pushes keep both descriptors in the tag's index; auto uses the newest", async () => {
    const img = await image("twice");
    const first = join(dir, "first.txt");
    const second = join(dir, "second.txt");
    await writeFile(first, "etc/motd\n");
    await writeFile(second, `bin/busybox\n${libFiles.join("\n")}\n`);
    const a = await pushProfile(img.ref, first);
    const b = await pushProfile(img.ref, second);
    expect(a.digest).not.toBe(b.digest);
    const index = await tagIndex(img.digest);
    const listed = (index.json.manifests ?? []).map((d) => [d.digest, d.artifactType]);
    expect(listed).toEqual([
      [a.digest, ARTIFACT_TYPE],
      [b.digest, ARTIFACT_TYPE],
    ]);
    // With SOURCE_DATE_EPOCH the artifact is reproducible: pushing it twice lists it once.
    const reproducible = async () => {
      const r = await run(
        process.execPath,
        [seekableCli(), "profile", "push", img.ref, second, "--json"],
        { env: { ...process.env, SOURCE_DATE_EPOCH: "1900000000" } },
      );
      expect(r.code, describeRun(r)).toBe(0);
      return jsonOut<{ digest: string }>(r).digest;
    };
    const c = await reproducible();
    expect(await reproducible()).toBe(c);
    expect(((await tagIndex(img.digest)).json.manifests ?? []).map((d) => d.digest)).toEqual([
      a.digest,
      b.digest,
      c,
    ]);

    const m = await mount(img.ref, "--prefetch", "auto");
    try {
      const line = await m.waitFor(/prefetched/);
      expect(line).toContain(c); // created 2030: the newest
      expect(line).toMatch(/prefetched 41 files/);
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it("the profile of an index is the mounted platform's", async () => {
    const img = await image("platform");
    const client = new RegistryClient();
    let indexRef: string;
    try {
      const idx = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [
            {
              mediaType: OCI_MANIFEST,
              digest: img.digest,
              size: img.size,
              platform: { os: "linux", architecture: "amd64" },
            },
          ],
        }),
      );
      indexRef = `${registry.host}/${repo.repository}:multi`;
      await putManifest(client, parseReference(indexRef), idx, OCI_INDEX);
    } finally {
      await client.close();
    }
    const file = join(dir, "platform.txt");
    await writeFile(file, "etc/motd\nusr/lib/m1.txt\n");
    const pushed = await pushProfile(`docker://${indexRef}`, file, "--platform", "linux/amd64");
    expect(pushed.subject.digest).toBe(img.digest);
    const m = await mount(
      `docker://${indexRef}`,
      "--platform",
      "linux/amd64",
      "--prefetch",
      "auto",
    );
    try {
      expect(await m.waitFor(/prefetched/)).toContain(pushed.digest);
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it("no profile stored: a warning, and an ordinary lazy mount", async () => {
    const img = await image("none");
    await expectLazyWithWarning(
      img.ref,
      /no profile stored for sha256:[0-9a-f]{64}.*sha256-/,
      "--prefetch",
      "auto",
    );
  });

  it("a corrupt profile (bad JSON) is a warning, and an ordinary lazy mount", async () => {
    const img = await image("badjson");
    const client = new RegistryClient();
    try {
      const empty = Buffer.from("{}");
      await pushBlob(client, repo, { digest: digestOf(empty), size: 2 }, empty);
      const body = Buffer.from('{"paths": ["etc/motd",');
      await pushBlob(client, repo, { digest: digestOf(body), size: body.length }, body);
      const art = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: ARTIFACT_TYPE,
          config: {
            mediaType: "application/vnd.oci.empty.v1+json",
            digest: digestOf(empty),
            size: 2,
          },
          layers: [{ mediaType: ARTIFACT_TYPE, digest: digestOf(body), size: body.length }],
          subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.size },
        }),
      );
      const digest = await putManifest(
        client,
        { ...repo, digest: digestOf(art) },
        art,
        OCI_MANIFEST,
      );
      await addReferrer(client, repo, img.digest, {
        mediaType: OCI_MANIFEST,
        digest,
        size: art.length,
        artifactType: ARTIFACT_TYPE,
      });
    } finally {
      await client.close();
    }
    await expectLazyWithWarning(img.ref, /not valid JSON/, "--prefetch", "auto");
  });

  it("a profile whose bytes do not match its digest is a warning, and a lazy mount", async () => {
    const img = await image("baddigest");
    const file = join(dir, "baddigest.txt");
    await writeFile(file, "etc/motd\n");
    await pushProfile(img.ref, file);
    const body = Buffer.from(JSON.stringify({ mediaType: ARTIFACT_TYPE, paths: ["etc/motd"] }));
    proxy.rule = (req) =>
      req.url?.endsWith(`/blobs/${digestOf(body)}`) ? { kind: "corrupt", at: 5 } : undefined;
    try {
      await expectLazyWithWarning(viaProxy(img.ref), /digest/, "--prefetch", "auto");
    } finally {
      proxy.rule = undefined;
    }
  });

  it("a profile naming paths not in the image is a warning, and a lazy mount", async () => {
    const img = await image("otherimage");
    const file = join(dir, "other.txt");
    await writeFile(file, "etc/motd\nusr/lib/not-here.so\n");
    await pushProfile(img.ref, file);
    await expectLazyWithWarning(
      img.ref,
      /1 of 2 paths are not in this image.*not-here/,
      "--prefetch",
      "auto",
    );
  });

  it("a missing, oversized or malformed local profile is a warning, and a lazy mount", async () => {
    const img = await image("localbad");
    await expectLazyWithWarning(
      img.ref,
      /nope\.txt: no such file/,
      "--prefetch",
      join(dir, "nope.txt"),
    );
    const big = join(dir, "big.txt");
    await writeFile(big, Buffer.alloc((16 << 20) + 10, 0x61));
    await expectLazyWithWarning(img.ref, /larger than/, "--prefetch", big);
    const nul = join(dir, "nul.txt");
    await writeFile(nul, "etc/motd\nbad\0path\n");
    await expectLazyWithWarning(img.ref, /line 2: not a path/, "--prefetch", nul);
  });

  it("prefetched bytes are verified: a corrupted batch is a warning and reads fetch again", async () => {
    const img = await image("corruptbatch");
    const file = join(dir, "corrupt.txt");
    await writeFile(file, `${workloadFiles.join("\n")}\n`);
    // Layer 1's batch answered with valid gzip members in the wrong places: each range gets
    // the bytes of the next one (the members are all the same size), so every part inflates
    // and only the chunk digests can tell.
    const top = layerBlobs[1];
    proxy.rule = (req) => {
      const range = req.headers.range ?? "";
      if (!range.includes(",") || !req.url?.endsWith(top.digest)) return undefined;
      const spans = range
        .slice("bytes=".length)
        .split(",")
        .map((r) => r.split("-").map(Number) as [number, number]);
      const parts = spans.map(([a, b], k) => {
        const [c, d] = spans[(k + 1) % spans.length];
        const data = d - c === b - a ? top.data.subarray(c, d + 1) : Buffer.alloc(b - a + 1, 1);
        return Buffer.concat([
          Buffer.from(`--XYZ\r\nContent-Range: bytes ${a}-${b}/${top.size}\r\n\r\n`),
          data,
          Buffer.from("\r\n"),
        ]);
      });
      const body = Buffer.concat([...parts, Buffer.from("--XYZ--\r\n")]);
      return {
        kind: "status",
        status: 206,
        headers: { "content-type": "multipart/byteranges; boundary=XYZ" },
        body: body as unknown as string, // res.end() takes the bytes as they are
      };
    };
    let m: Mount;
    try {
      m = await mount(viaProxy(img.ref), "--prefetch", file, "--no-cache");
      await m.waitFor(/warning/);
    } finally {
      proxy.rule = undefined;
    }
    let code: number | null;
    try {
      const w = await workload(m.dir);
      expect(w.code, describeRun(w)).toBe(0);
      expect(w.stdout.toString()).toBe(workloadOutput);
    } finally {
      code = await m.stop();
    }
    expect(code).toBe(0);
    expect(m.stderr()).toMatch(/warning: profile .*does not match its digest/);
  });

  it("uses the referrers API where the registry has one (no fallback tag)", async () => {
    const img = await image("api");
    let answer = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] as unknown[] };
    const seen: string[] = [];
    // The proxy plays a registry with the referrers API in front of the real one.
    proxy.rule = (req) => {
      if (!req.url?.includes("/referrers/")) return undefined;
      seen.push(req.url);
      return {
        kind: "status",
        status: 200,
        headers: { "content-type": OCI_INDEX },
        body: JSON.stringify(answer),
      };
    };
    try {
      const file = join(dir, "api.txt");
      await writeFile(file, "etc/motd\n");
      const pushed = await pushProfile(viaProxy(img.ref), file);
      expect(pushed.via).toBe("api");
      expect(pushed.tag).toBeUndefined();
      await expect(tagIndex(img.digest)).rejects.toThrow(/unknown|not found/i);
      answer = {
        ...answer,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: pushed.digest,
            size: 1,
            artifactType: ARTIFACT_TYPE,
          },
        ],
      };
      const m = await mount(viaProxy(img.ref), "--prefetch", "auto");
      try {
        const line = await m.waitFor(/prefetched|warning/);
        expect(line).toMatch(/prefetched 1 files/);
        expect(line).toMatch(/referrers API/);
      } finally {
        expect(await m.stop()).toBe(0);
      }
      expect(seen.at(-1)).toBe(
        `/v2/${repo.repository}/referrers/${img.digest}?artifactType=${encodeURIComponent(ARTIFACT_TYPE)}`,
      );
    } finally {
      proxy.rule = undefined;
    }
  });
});

describe("profile data", () => {
  it("parses recorded files and the stored JSON; refuses what is not a path list", () => {
    const text = Buffer.from("bin/busybox\r\n\n/etc/motd\n./usr/lib/x\netc/motd\n");
    expect(parseProfile(text)).toEqual(["bin/busybox", "etc/motd", "usr/lib/x"]);
    expect(parseProfile(Buffer.from(JSON.stringify({ paths: ["a", "/b"] })))).toEqual(["a", "b"]);
    expect(() => decodeProfile(Buffer.from("[1]"))).toThrow(/paths/);
    expect(() => decodeProfile(Buffer.from('{"paths":[3]}'))).toThrow(/not a path/);
    expect(() => decodeProfile(Buffer.from('{"paths":["/"]}'))).toThrow(/not a file path/);
    expect(() => decodeProfile(Buffer.from('{"mediaType":"x","paths":[]}'))).toThrow(/media type/);
  });

  it("the sha256-<hex> tag, and the newest referrer by its created annotation", () => {
    const d = `sha256:${"ab".repeat(32)}`;
    expect(referrersTag(d)).toBe(`sha256-${"ab".repeat(32)}`);
    const at = (digest: string, created?: string) => ({
      mediaType: OCI_MANIFEST,
      digest,
      size: 1,
      ...(created && { annotations: { "org.opencontainers.image.created": created } }),
    });
    expect(
      newestReferrer([at("a", "2026-01-02T00:00:00Z"), at("b", "2026-01-01T00:00:00Z"), at("c")])
        ?.digest,
    ).toBe("a");
    expect(newestReferrer([at("a"), at("b")])?.digest).toBe("b");
    expect(newestReferrer([])).toBeUndefined();
  });

  it("merges member ranges into at most N spans, closing the smallest gaps first", () => {
    const r = (start: number, end: number) => ({ start, end });
    // Adjacent ranges always merge.
    expect(mergeSpans([r(0, 10), r(10, 20), r(50, 60)], 32, 1 << 20)).toEqual([
      { start: 0, end: 20, members: [0, 1] },
      { start: 50, end: 60, members: [2] },
    ]);
    // Four spans into two: the gaps of 5 and 10 close, the one of 100 stays.
    expect(mergeSpans([r(0, 10), r(15, 20), r(120, 130), r(140, 150)], 2, 1 << 20)).toEqual([
      { start: 0, end: 20, members: [0, 1] },
      { start: 120, end: 150, members: [2, 3] },
    ]);
    // A gap wider than maxGap is never closed, even past the span count.
    expect(mergeSpans([r(0, 10), r(5000, 5010)], 1, 100)).toHaveLength(2);
  });
});
