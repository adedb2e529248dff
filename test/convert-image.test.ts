// Whole-image conversion (`seekable convert SRC DST`) against real components: images put in
// the real Debian docker-registry by skopeo, results read back by skopeo, every converted
// layer checked by the reference (estargz-ref check) against its source tar.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { parseReference, pushBlob, putManifest, RegistryClient } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, type RunResult, reference, run, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha } from "./helpers/tar.js";

const TOC = "containerd.io/snapshot/stargz/toc.digest";
const USIZE = "io.containers.estargz.uncompressed-size";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}

let registry: RunningRegistry;
let dir: string;
let cleanup: () => Promise<void>;
/** Source tars of each test image, bottom layer first. */
const srcTars: Record<string, Buffer[]> = {};
/** Which prioritized paths each layer of the "app" image holds (topmost wins). */
const prioritizedIn = [["etc/os-release"], ["usr/bin/tool"], ["data/blob"]];

async function writeBlob(layout: string, data: Uint8Array): Promise<Desc & { data: Uint8Array }> {
  const digest = sha(data);
  await writeFile(join(layout, "blobs/sha256", digest.slice(7)), data);
  return { mediaType: "", digest, size: data.length, data };
}

/** An image in an OCI layout: gzip layers (or raw blobs), a config with history and labels. */
async function addImage(
  layout: string,
  layers: Buffer[],
  opts: { arch?: string; rawLayers?: boolean } = {},
): Promise<Desc> {
  await mkdir(join(layout, "blobs/sha256"), { recursive: true });
  await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const descs: Desc[] = [];
  const diffIDs: string[] = [];
  for (const tar of layers) {
    diffIDs.push(sha(opts.rawLayers ? gunzipSync(tar) : tar));
    const b = await writeBlob(layout, opts.rawLayers ? tar : gzipSync(tar));
    descs.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: b.digest,
      size: b.size,
    });
  }
  const config = {
    architecture: opts.arch ?? "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin"], Labels: { "org.example.kept": "yes" } },
    rootfs: { type: "layers", diff_ids: diffIDs },
    history: layers.map((_, i) => ({ created_by: `step ${i}` })),
  };
  const c = await writeBlob(layout, Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: c.digest,
      size: c.size,
    },
    layers: descs,
    annotations: { "org.example.manifest": "kept" },
  };
  const m = await writeBlob(layout, Buffer.from(JSON.stringify(manifest)));
  return {
    mediaType: OCI_MANIFEST,
    digest: m.digest,
    size: m.size,
    platform: { os: "linux", architecture: opts.arch ?? "amd64" },
  };
}

async function tagLayout(layout: string, entries: [string, Desc][]): Promise<void> {
  const manifests = entries.map(([tag, d]) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    annotations: { "org.opencontainers.image.ref.name": tag },
  }));
  await writeFile(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests }));
}

function skopeo(...args: string[]): Promise<RunResult> {
  return run("skopeo", ["--insecure-policy", ...args]);
}
async function ok(p: Promise<RunResult>): Promise<RunResult> {
  const r = await p;
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}
const inspectRaw = async (ref: string) =>
  JSON.parse((await ok(skopeo("inspect", "--tls-verify=false", "--raw", ref))).stdout.toString());

let srcLayout: string;
let reg: (name: string) => string;

beforeAll(async () => {
  registry = await startRegistry();
  reg = (name) => `docker://${registry.host}/${name}`;
  const tmp = await makeTempDir("convert-image");
  dir = tmp.path;
  cleanup = tmp.remove;
  srcLayout = join(dir, "src");
  const l1 = await makeTar([
    { name: "etc/" },
    { name: "etc/os-release", body: "ID=old\n" },
    { name: "usr/" },
    { name: "usr/lib/" },
    { name: "usr/lib/big.bin", body: pseudoRandom(1_500_000, 1) },
    { name: "usr/bin/" },
    { name: "usr/bin/tool", body: "#!/bin/sh\necho base\n" },
    // A duplicate name: the converter starts the upload over (last copy wins).
    { name: "etc/os-release", body: "ID=test\n" },
  ]);
  const l2 = await makeTar([
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: "usr/bin/tool", body: "#!/bin/sh\necho upper\n" },
    { name: "usr/lib/" },
    { name: "usr/lib/.wh.big.bin", body: "" },
    { name: "app/" },
    { name: "app/run.sh", body: "exec tool\n" },
  ]);
  const l3 = await makeTar([
    { name: "data/" },
    { name: "data/blob", body: pseudoRandom(300_000, 3) },
  ]);
  const l4 = await makeTar([{ name: "arm", body: "arm64\n" }]);
  srcTars.app = [l1, l2, l3];
  srcTars.amd64 = [l1, l2, l3];
  srcTars.arm64 = [l1, l4];
  srcTars.empty = [l3, Buffer.alloc(1024), l2];
  const main = await addImage(srcLayout, [l1, l2, l3]);
  const arm = await addImage(srcLayout, [l1, l4], {
    arch: "arm64",
  });
  const idx = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [main, arm] }),
  );
  const idxDesc = await writeBlob(srcLayout, idx);
  // An image whose middle layer is an empty tar (gzip of zero blocks).
  const empty = await addImage(srcLayout, [l3, Buffer.alloc(1024), l2]);
  await tagLayout(srcLayout, [
    ["v1", main],
    ["multi", { ...idxDesc, mediaType: OCI_INDEX }],
    ["empty", empty],
  ]);
  const copy = (from: string, to: string, ...extra: string[]) =>
    ok(skopeo("copy", "--dest-tls-verify=false", ...extra, from, to));
  await Promise.all([
    copy(`oci:${srcLayout}:v1`, reg("src/app:v1"), "--format", "v2s2"),
    copy(`oci:${srcLayout}:multi`, reg("src/multi:v1"), "--all"),
    copy(`oci:${srcLayout}:empty`, reg("src/empty:v1")),
  ]);
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  await cleanup?.();
});

interface Report {
  manifest: string;
  layers: {
    digest: string;
    size: number;
    diffID: string;
    tocDigest: string;
    uncompressedSize: number;
  }[];
}

async function convert(...args: string[]): Promise<Report> {
  const r = await seekable("convert", ...args, "--json");
  expect(r.code, describeRun(r)).toBe(0);
  expect(r.stderr).toBe("");
  return jsonOut<Report>(r);
}

const blobUrl = (repo: string, digest: string) => `${registry.url}/v2/${repo}/blobs/${digest}`;
async function getBlob(repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(blobUrl(repo, digest));
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** Checks a converted image manifest in the registry, layer by layer, with the reference. */
async function checkImage(
  repo: string,
  manifest: { config: Desc; layers: Desc[] },
  tars: Buffer[],
  prioritized?: string,
): Promise<void> {
  const config = JSON.parse((await getBlob(repo, manifest.config.digest)).toString());
  expect(manifest.config.mediaType).toBe("application/vnd.oci.image.config.v1+json");
  expect(config.config.Labels["org.example.kept"]).toBe("yes");
  expect(config.history.length).toBe(manifest.layers.length);
  for (const [i, layer] of manifest.layers.entries()) {
    expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    const toc = await seekable("toc", blobUrl(repo, layer.digest));
    expect(toc.code, describeRun(toc)).toBe(0);
    expect(layer.annotations?.[TOC]).toBe(sha(toc.stdout));
    const blob = await getBlob(repo, layer.digest);
    const raw = gunzipSync(blob);
    expect(config.rootfs.diff_ids[i]).toBe(sha(raw));
    expect(layer.annotations?.[USIZE]).toBe(String(raw.length));
    // The reference verifies the blob against the source tar it came from.
    const src = tars[i];
    const blobPath = join(dir, `${layer.digest.slice(7)}.blob`);
    await writeFile(blobPath, blob);
    const args = ["check", blobPath, "-toc-digest", layer.annotations?.[TOC] as string];
    if (src) {
      const srcPath = join(dir, `${layer.digest.slice(7)}.tar`);
      await writeFile(srcPath, src);
      args.push("-tar", srcPath);
      if (prioritized) {
        // The paths this layer holds, as the image conversion assigned them.
        const lines = (await readFile(prioritized, "utf8")).split("\n").filter(Boolean);
        const held = lines.filter((p) => prioritizedIn[i]?.includes(p));
        const listPath = join(dir, `${layer.digest.slice(7)}.prio`);
        await writeFile(listPath, held.join("\n"));
        args.push("-prioritized", listPath);
      }
    }
    const r = await reference(...args);
    expect(r.code, describeRun(r)).toBe(0);
  }
}

describe("seekable convert IMAGE IMAGE", () => {
  it("converts a Docker image registry to registry, reproducibly, checked by the reference", async () => {
    const report = await convert(reg("src/app:v1"), reg("out/app:v1"));
    const m = await inspectRaw(reg("out/app:v1"));
    expect(m.mediaType).toBe(OCI_MANIFEST);
    expect(m.layers.length).toBe(3);
    expect(report.manifest).toBe(sha(Buffer.from(JSON.stringify(m))));
    expect(report.layers.map((l) => l.digest)).toEqual(m.layers.map((l: Desc) => l.digest));
    await checkImage("out/app", m, srcTars.app);
    const again = await convert(reg("src/app:v1"), reg("out/app:again"), "--concurrency", "1");
    expect(again.manifest).toBe(report.manifest);
    // skopeo reads the result as an image.
    const inspect = JSON.parse(
      (await ok(skopeo("inspect", "--tls-verify=false", reg("out/app:v1")))).stdout.toString(),
    );
    expect(inspect.Layers).toEqual(m.layers.map((l: Desc) => l.digest));
  });

  it("keeps an image whose layers are already eStargz, converts it with --force", async () => {
    await convert(reg("src/app:v1"), reg("out/estargz:v1"));
    const before = await inspectRaw(reg("out/estargz:v1"));
    const kept = await convert(reg("out/estargz:v1"), reg("out/kept:v1"));
    const after = await inspectRaw(reg("out/kept:v1"));
    expect(after).toEqual(before);
    expect(kept.manifest).toBe(sha(Buffer.from(JSON.stringify(before))));
    expect(kept.layers.map((l) => l.tocDigest)).toEqual(
      before.layers.map((l: Desc) => l.annotations?.[TOC]),
    );
    const forced = await convert(reg("out/estargz:v1"), reg("out/forced:v1"), "--force");
    const f = await inspectRaw(reg("out/forced:v1"));
    expect(forced.manifest).toBe(sha(Buffer.from(JSON.stringify(f))));
    await checkImage("out/forced", f, srcTars.app);
  });

  it("converts an OCI layout to an OCI layout, read back by skopeo", async () => {
    const out = join(dir, "out-layout");
    const report = await convert(`oci:${srcLayout}:v1`, `oci:${out}:conv`);
    const m = await inspectRaw(`oci:${out}:conv`);
    expect(m.mediaType).toBe(OCI_MANIFEST);
    expect(m.annotations["org.example.manifest"]).toBe("kept");
    expect(sha(Buffer.from(JSON.stringify(m)))).toBe(report.manifest);
    for (const l of m.layers) expect(l.annotations[TOC]).toMatch(/^sha256:/);
    const inspect = await ok(skopeo("inspect", `oci:${out}:conv`));
    expect(JSON.parse(inspect.stdout.toString()).Layers.length).toBe(3);
    // Same image as the registry route.
    const viaRegistry = await inspectRaw(reg("out/app:v1"));
    expect(m.layers.map((l: Desc) => l.digest)).toEqual(
      viaRegistry.layers.map((l: Desc) => l.digest),
    );
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8"));
    expect(index.manifests.length).toBe(1);
  });

  it("converts a docker-archive to a registry", async () => {
    const archive = join(dir, "image.tar");
    await ok(skopeo("copy", `oci:${srcLayout}:v1`, `docker-archive:${archive}:example/app:v1`));
    await convert(`docker-archive:${archive}`, reg("out/archive:v1"));
    const m = await inspectRaw(reg("out/archive:v1"));
    expect(m.mediaType).toBe(OCI_MANIFEST);
    await checkImage("out/archive", m, srcTars.app);
    const viaRegistry = await inspectRaw(reg("out/app:v1"));
    expect(m.layers.map((l: Desc) => l.digest)).toEqual(
      viaRegistry.layers.map((l: Desc) => l.digest),
    );
  });

  it("converts every platform of an index, or the one --platform names", async () => {
    const report = await convert(reg("src/multi:v1"), reg("out/multi:v1"));
    const idx = await inspectRaw(reg("out/multi:v1"));
    expect(idx.mediaType).toBe(OCI_INDEX);
    expect(report.manifest).toBe(sha(Buffer.from(JSON.stringify(idx))));
    expect(idx.manifests.map((d: Desc) => d.platform?.architecture)).toEqual(["amd64", "arm64"]);
    for (const d of idx.manifests) {
      const m = await inspectRaw(`${reg("out/multi")}@${d.digest}`);
      expect(m.mediaType).toBe(OCI_MANIFEST);
      await checkImage("out/multi", m, srcTars[d.platform.architecture] as Buffer[]);
    }
    // The shared bottom layer is converted once and listed once.
    expect(report.layers.length).toBe(4);
    await convert(reg("src/multi:v1"), reg("out/multi:arm"), "--platform", "linux/arm64");
    const one = await inspectRaw(reg("out/multi:arm"));
    expect(one.mediaType).toBe(OCI_INDEX);
    expect(one.manifests.length).toBe(1);
    expect(one.manifests[0].platform.architecture).toBe("arm64");
    expect(one.manifests[0].digest).toBe(idx.manifests[1].digest);
  });

  it("converts an image with an empty layer", async () => {
    await convert(reg("src/empty:v1"), reg("out/empty:v1"));
    const m = await inspectRaw(reg("out/empty:v1"));
    await checkImage("out/empty", m, srcTars.empty);
    const emptyTar = join(dir, "empty.tar");
    await writeFile(emptyTar, Buffer.alloc(1024));
    const blobPath = join(dir, "empty-layer.blob");
    await writeFile(blobPath, await getBlob("out/empty", m.layers[1].digest));
    const r = await reference(
      "check",
      blobPath,
      "-toc-digest",
      m.layers[1].annotations[TOC],
      "-tar",
      emptyTar,
    );
    expect(r.code, describeRun(r)).toBe(0);
  });

  it("puts prioritized files in the topmost layer holding them", async () => {
    const list = join(dir, "prio.txt");
    await writeFile(list, "usr/bin/tool\ndata/blob\netc/os-release\nnot/there\n");
    await convert(reg("src/app:v1"), reg("out/prio:v1"), "--prioritized-files", list);
    const m = await inspectRaw(reg("out/prio:v1"));
    const names = async (i: number) => {
      const r = await seekable("toc", blobUrl("out/prio", m.layers[i].digest));
      return JSON.parse(r.stdout.toString()).entries.map(
        (e: { name: string }) => e.name,
      ) as string[];
    };
    const [n1, n2, n3] = [await names(0), await names(1), await names(2)];
    const early = (n: string[], name: string) => n.indexOf(name) < n.indexOf(".prefetch.landmark");
    expect(early(n1, "etc/os-release")).toBe(true);
    expect(early(n1, "usr/bin/tool")).toBe(false); // layer 2 holds the visible copy
    expect(early(n2, "usr/bin/tool")).toBe(true);
    expect(early(n3, "data/blob")).toBe(true);
    await checkImage("out/prio", m, srcTars.app, list);
  });

  describe("bad input: exit 1, one line, nothing tagged at the destination", () => {
    async function fails(args: string[], dest: string, pattern: RegExp): Promise<void> {
      const r = await seekable("convert", ...args, dest);
      expect(r.code, describeRun(r)).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines.length, r.stderr).toBe(1);
      expect(lines[0]).toMatch(/^seekable: /);
      expect(lines[0]).toMatch(pattern);
      if (dest.startsWith("docker://")) {
        const inspect = await skopeo("inspect", "--tls-verify=false", "--raw", dest);
        expect(inspect.code).not.toBe(0);
      }
    }

    it("a reference that does not exist", async () => {
      await fails(
        [reg("src/nothing:v1")],
        reg("out/bad1:v1"),
        /src\/nothing:v1: .*(unknown|not found)/i,
      );
    });

    it("a layout without the tag", async () => {
      const out = join(dir, "bad-layout");
      await fails([`oci:${srcLayout}:nope`], `oci:${out}:x`, /nope/);
      await expect(readFile(join(out, "index.json"))).rejects.toThrow();
    });

    it("a corrupt layer", async () => {
      const client = new RegistryClient();
      const repo = parseReference(`${registry.host}/src/corrupt:v1`);
      const good = gzipSync(await makeTar([{ name: "a", body: "a" }]));
      const bad = gzipSync(await makeTar([{ name: "b", body: pseudoRandom(200_000, 9) }])).subarray(
        0,
        90_000,
      );
      const config = Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          rootfs: { type: "layers", diff_ids: [sha(gunzipSync(good)), sha(Buffer.alloc(0))] },
        }),
      );
      const layers = [good, bad].map((b) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: sha(b),
        size: b.length,
      }));
      for (const b of [good, bad, config])
        await pushBlob(client, repo, { digest: sha(b), size: b.length }, b);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            digest: sha(config),
            size: config.length,
          },
          layers,
        }),
      );
      await putManifest(client, repo, manifest, OCI_MANIFEST);
      await client.close();
      await fails([reg("src/corrupt:v1")], reg("out/corrupt:v1"), /truncated|corrupt/);
      const out = join(dir, "corrupt-layout");
      await fails([reg("src/corrupt:v1")], `oci:${out}:x`, /truncated|corrupt/);
      await expect(readFile(join(out, "index.json"))).rejects.toThrow();
    });
  });
});
