// `seekable snapshotter` and `seekable pull` with real components: Debian's containerd 1.6
// (its own root, state and sockets), runc, the real registry behind a fault proxy, real FUSE
// and overlayfs. eStargz layers are committed by the snapshotter without a blob download and
// read lazily; a plain gzip layer on top is unpacked by containerd; the state survives kill -9
// and a containerd restart; image removal + GC leaves nothing; a registry failure is EIO.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseReference, pushBlob, putManifest, RegistryClient } from "@seekable/registry";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Containerd, startContainerd } from "./helpers/containerd.js";
import { type ConvertedLayer, convertItems } from "./helpers/convert.js";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { type Foreground, startForeground } from "./helpers/foreground.js";
import { pythonImage } from "./helpers/python-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

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
  existsSync("/bin/busybox") ? "" : "busybox-static (/bin/busybox)",
  existsSync("/usr/bin/python3") ? "" : "python3",
  has("fusermount") ? "" : "fuse3 (fusermount)",
  has("containerd") ? "" : "containerd",
  has("ctr") ? "" : "containerd (ctr)",
  has("runc") ? "" : "runc",
].filter((m) => m !== "");

const REPO = "seekable/snap";
const big = pseudoRandom(3 << 20, 5);

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
let root: string;
let sock: string;
let snapshotter: Foreground | undefined;
let containerd: Containerd | undefined;
let layers: ConvertedLayer[];
let plainApp: Layer;
/** Names through the fault proxy: the bytes the snapshotter fetches are counted there. */
let lazyImage: string;
let mixedImage: string;

async function pushImage(client: RegistryClient, tag: string, ls: Layer[]): Promise<string> {
  const repo = { registry: registry.host, repository: REPO };
  for (const l of ls)
    await pushBlob(client, repo, { digest: l.digest, size: l.blob.length }, l.blob);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"], Env: ["PATH=/usr/bin:/bin"] },
      rootfs: { type: "layers", diff_ids: ls.map((l) => l.diffId) },
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
      layers: ls.map((l) => ({
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
    parseReference(`${registry.host}/${REPO}:${tag}`),
    manifest,
    "application/vnd.oci.image.manifest.v1+json",
  );
  return `${proxy.host}/${REPO}:${tag}`;
}

function startSnapshotter(): Promise<Foreground> {
  return startForeground("snapshotter", [
    "snapshotter",
    "--address",
    sock,
    "--root",
    root,
    "--cache-dir",
    join(work, "cache"),
  ]);
}

/** Bytes of these layers' blobs the registry sent since log entry `from`. */
function layerBytes(from: number, ls: Layer[]): number {
  return proxy.log
    .slice(from)
    .filter((e) => ls.some((l) => e.url.endsWith(`/blobs/${l.digest}`)))
    .reduce((n, e) => n + e.bytesSent, 0);
}

function ctrRun(image: string, id: string, ...cmd: string[]) {
  return (containerd as Containerd).ctr(
    "default",
    "run",
    "--rm",
    "--snapshotter",
    "seekable",
    "--runtime",
    "io.containerd.runc.v2",
    image,
    id,
    ...cmd,
  );
}

/** Mount points under the snapshotter's root other than its layer store. */
async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m) => m?.startsWith(`${dir}/`) && m !== join(dir, "store"));
}

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(`cannot test the snapshotter: missing ${missing.join(", ")}`);
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  // overlayfs needs upper directories on a real file system (not on the overlay /work may be).
  work = await mkdtemp(join(tmpdir(), "seekable-snap-"));
  root = join(work, "root");
  sock = join(work, "snapshotter.sock");
  const py = pythonImage();
  const app: TarItem[] = [...py.app, { name: "app/big.bin", body: big }];
  layers = [];
  for (const [i, items] of [py.base, py.python, app].entries()) {
    layers.push(await convertItems(work, `l${i}`, items));
  }
  const appTar = await makeTar(app);
  const appGz = gzipSync(appTar);
  plainApp = { blob: appGz, digest: sha(appGz), diffId: sha(appTar) };
  const client = new RegistryClient();
  try {
    lazyImage = await pushImage(client, "esgz", layers);
    mixedImage = await pushImage(client, "mixed", [layers[0], layers[1], plainApp]);
  } finally {
    await client.close();
  }
  snapshotter = await startSnapshotter();
  containerd = await startContainerd(join(work, "containerd"), { snapshotter: sock });
}, 600_000);

afterAll(async () => {
  if (containerd) {
    for (const img of [lazyImage, mixedImage])
      await containerd.ctr("default", "images", "rm", "--sync", img).catch(() => {});
    await containerd.stop();
  }
  if (snapshotter && snapshotter.proc.exitCode === null) await snapshotter.stop().catch(() => {});
  await proxy?.close();
  await registry?.stop();
  if (work && !process.env.KEEP_TEST_FILES) {
    for (const m of (await mountsUnder(work)).reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {
        // gone already
      }
    }
    try {
      execFileSync("fusermount", ["-u", "-z", join(root, "store")], { stdio: "ignore" });
    } catch {
      // not mounted
    }
    await rm(work, { recursive: true, force: true });
  }
});

describe("seekable snapshotter with containerd", () => {
  it("seekable pull commits every eStargz layer without downloading it; ctr run starts python3 from it", async () => {
    const from = proxy.log.length;
    const r = await seekable(
      "pull",
      "--containerd",
      (containerd as Containerd).socket,
      `docker://${lazyImage}`,
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const pulled = jsonOut<{ name: string; layers: { digest: string; kind: string }[] }>(r);
    expect(pulled.layers.map((l) => l.kind)).toEqual(["lazy", "lazy", "lazy"]);
    // Only footers and TOCs were read at pull.
    const total = layers.reduce((n, l) => n + l.blob.length, 0);
    expect(layerBytes(from, layers)).toBeLessThan(total * 0.05);

    const ls = await (containerd as Containerd).ctr("default", "images", "ls", "-q");
    expect(ls.stdout.toString().split("\n")).toContain(lazyImage);

    const before = proxy.log.length;
    const run = await ctrRun(
      lazyImage,
      "py1",
      "python3",
      "-c",
      "import json; print(json.dumps([1]))",
    );
    expect(run.code, `${describeRun(run)}\n${snapshotter?.stderr()}`).toBe(0);
    expect(run.stdout.toString()).toBe("[1]\n");
    // The start read a part of the image, lazily.
    const read = layerBytes(before, layers);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(total * 0.5);
  });

  it("an image with a plain gzip layer on eStargz ones: that layer is downloaded and unpacked by containerd, the others lazy", async () => {
    const from = proxy.log.length;
    const r = await seekable(
      "pull",
      "--containerd",
      (containerd as Containerd).socket,
      `docker://${mixedImage}`,
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const pulled = jsonOut<{ layers: { kind: string }[] }>(r);
    // The two lower layers are the lazy image's: already committed.
    expect(pulled.layers.map((l) => l.kind)).toEqual(["present", "present", "unpacked"]);
    expect(layerBytes(from, [plainApp])).toBe(plainApp.blob.length);
    const run = await ctrRun(
      mixedImage,
      "mixed1",
      "sh",
      "-c",
      "python3 /app/main.py && busybox md5sum /app/big.bin",
    );
    expect(run.code, describeRun(run)).toBe(0);
    expect(run.stdout.toString()).toBe(`{"ok": true}\n${createMd5(big)}  /app/big.bin\n`);
  });

  it("after kill -9 of the snapshotter and a containerd restart, the images are listed and a container starts again", async () => {
    const s = snapshotter as Foreground;
    s.proc.kill("SIGKILL");
    await s.exited;
    await (containerd as Containerd).restart();
    snapshotter = await startSnapshotter();
    expect(snapshotter.stderr()).toMatch(/cleared a stale mount/);
    const ls = await (containerd as Containerd).ctr("default", "images", "ls", "-q");
    expect(ls.stdout.toString().split("\n")).toEqual(
      expect.arrayContaining([lazyImage, mixedImage]),
    );
    const snaps = await (containerd as Containerd).ctr(
      "default",
      "snapshots",
      "--snapshotter",
      "seekable",
      "ls",
    );
    expect(snaps.code, describeRun(snaps)).toBe(0);
    expect(snaps.stdout.toString().trim().split("\n").length).toBe(1 + 4);
    const run = await ctrRun(mixedImage, "mixed2", "python3", "/app/main.py");
    expect(run.code, `${describeRun(run)}\n${snapshotter.stderr()}`).toBe(0);
    expect(run.stdout.toString()).toBe('{"ok": true}\n');
  });

  it("a registry failure mid-read is EIO in the container; the snapshotter and containerd stay up and the next read works", async () => {
    proxy.rule = (req) =>
      req.url?.includes(layers[2].digest) ? { kind: "status", status: 500 } : undefined;
    try {
      const failed = await ctrRun(lazyImage, "eio1", "busybox", "md5sum", "/app/big.bin");
      expect(failed.code, describeRun(failed)).not.toBe(0);
      expect(`${failed.stdout}${failed.stderr}`).toMatch(/I\/O error/);
    } finally {
      proxy.rule = undefined;
    }
    expect(snapshotter?.proc.exitCode).toBeNull();
    const v = await (containerd as Containerd).ctr("default", "version");
    expect(v.code, describeRun(v)).toBe(0);
    const again = await ctrRun(lazyImage, "eio2", "busybox", "md5sum", "/app/big.bin");
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout.toString()).toBe(`${createMd5(big)}  /app/big.bin\n`);
  });

  it("ctr images rm + GC leaves no snapshot, directory, mount or database row behind", async () => {
    const c = containerd as Containerd;
    for (const img of [lazyImage, mixedImage]) {
      const r = await c.ctr("default", "images", "rm", "--sync", img);
      expect(r.code, describeRun(r)).toBe(0);
    }
    const snaps = await c.ctr("default", "snapshots", "--snapshotter", "seekable", "ls");
    expect(snaps.stdout.toString().trim().split("\n")).toHaveLength(1); // the header
    const content = await c.ctr("default", "content", "ls", "-q");
    expect(content.stdout.toString().trim()).toBe("");
    expect(await readdir(join(root, "snapshots"))).toEqual([]);
    expect(await mountsUnder(root)).toEqual([]);
    const db = new Database(join(root, "metadata.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) AS n FROM snapshots").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});

function createMd5(b: Buffer): string {
  return createHash("md5").update(b).digest("hex");
}
