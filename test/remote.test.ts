// Lazy reading of images in the real registry (Debian docker-registry on loopback): images
// pushed by the test, layers converted by seekable, by the reference, and one plain tar.gz.
import { readFile, writeFile } from "node:fs/promises";
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
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, reference, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

let registry: RunningRegistry;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;
let badRef: string;
// The registry host is known once the registry has started.
const repo = { registry: "", repository: "seekable/test" } satisfies Repository;
const layerDigests: string[] = [];
const tocDigests: string[] = [];
/** What the merged image must show: path -> content. */
const merged = new Map<string, Buffer>();
/** Per layer: path -> content, as in its source tar. */
const perLayer: Map<string, Buffer>[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  repo.registry = registry.host;
  const tmp = await makeTempDir("remote");
  dir = tmp.path;
  cleanup = tmp.remove;
  const big = pseudoRandom(3 * 1024 * 1024 + 7, 1);
  const layers: TarItem[][] = [
    [
      { name: "etc/" },
      { name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\n" },
      { name: "etc/gone", body: "removed above" },
      { name: "usr/" },
      { name: "usr/lib/" },
      { name: "usr/lib/big.bin", body: big },
      { name: "usr/lib/small.txt", body: "small" },
      { name: "opt/" },
      { name: "opt/old/" },
      { name: "opt/old/x", body: "hidden by opaque" },
    ],
    [
      { name: "etc/" },
      { name: "etc/.wh.gone", body: "" },
      { name: "opt/old/" },
      { name: "opt/old/.wh..wh..opq", body: "" },
      { name: "opt/old/y", body: "y" },
      { name: "usr/lib/small.txt", body: "small, replaced" },
      { name: "usr/lib/hard", type: "link", linkname: "usr/lib/small.txt" },
    ],
    [
      { name: "app/" },
      { name: "app/main.sh", body: "#!/bin/sh\necho hi\n" },
      { name: "app/link", type: "symlink", linkname: "main.sh" },
    ],
  ];
  const client = new RegistryClient();
  try {
    for (let i = 0; i < layers.length; i++) {
      const tar = await makeTar(layers[i]);
      const tarPath = join(dir, `l${i}.tar`);
      await writeFile(tarPath, tar);
      const out = join(dir, `l${i}.blob`);
      if (i === 0) {
        const r = await seekable("convert", tarPath, out, "--chunk-size", "1000000", "--json");
        expect(r.code, describeRun(r)).toBe(0);
        tocDigests.push(jsonOut<{ tocDigest: string }>(r).tocDigest);
      } else if (i === 1) {
        const r = await reference("build", tarPath, out, "-chunk-size", "65536");
        expect(r.code, describeRun(r)).toBe(0);
        tocDigests.push(jsonOut<{ tocDigest: string }>(r).tocDigest);
      } else {
        await writeFile(out, gzipSync(tar)); // not eStargz: read by streaming it whole
        tocDigests.push("");
      }
      const data = await readFile(out);
      const digest = sha(data);
      layerDigests.push(digest);
      await pushBlob(client, repo, { digest, size: data.length }, data);
      const files = new Map<string, Buffer>();
      for (const it of layers[i]) {
        if (it.body !== undefined && !it.name.includes(".wh."))
          files.set(it.name, Buffer.from(it.body));
      }
      perLayer.push(files);
    }
    merged.set("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\n"));
    merged.set("usr/lib/big.bin", big);
    merged.set("usr/lib/small.txt", Buffer.from("small, replaced"));
    merged.set("usr/lib/hard", Buffer.from("small, replaced"));
    merged.set("opt/old/y", Buffer.from("y"));
    merged.set("app/main.sh", Buffer.from("#!/bin/sh\necho hi\n"));
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [] },
      }),
    );
    await pushBlob(client, repo, { digest: sha(config), size: config.length }, config);
    const manifest = (toc: string[]) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            digest: sha(config),
            size: config.length,
          },
          layers: layerDigests.map((d, i) => ({
            mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
            digest: d,
            size: perLayerSize[i],
            ...(toc[i]
              ? { annotations: { "containerd.io/snapshot/stargz/toc.digest": toc[i] } }
              : {}),
          })),
        }),
      );
    const perLayerSize = await Promise.all(
      layerDigests.map(async (_, i) => (await readFile(join(dir, `l${i}.blob`))).length),
    );
    ref = `${registry.host}/seekable/test:v1`;
    await putManifest(
      client,
      parseReference(ref),
      manifest(tocDigests),
      "application/vnd.oci.image.manifest.v1+json",
    );
    badRef = `${registry.host}/seekable/test:bad`;
    const wrong = [...tocDigests];
    wrong[0] = `sha256:${"1".repeat(64)}`;
    await putManifest(
      client,
      parseReference(badRef),
      manifest(wrong),
      "application/vnd.oci.image.manifest.v1+json",
    );
  } finally {
    await client.close();
  }
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await cleanup?.();
});

describe("reading an image lazily from the real registry", () => {
  it("lists the merged image with whiteouts and opaque directories applied", async () => {
    const r = await seekable("ls", `docker://${ref}`, "--json", "--no-cache");
    expect(r.code, describeRun(r)).toBe(0);
    const names = jsonOut<{ name: string }[]>(r)
      .map((e) => e.name)
      .sort();
    expect(names).toEqual(
      [
        "app",
        "app/link",
        "app/main.sh",
        "etc",
        "etc/passwd",
        "opt",
        "opt/old",
        "opt/old/y",
        "usr",
        "usr/lib",
        "usr/lib/big.bin",
        "usr/lib/hard",
        "usr/lib/small.txt",
      ].sort(),
    );
  });

  it("reads every file of the merged image equal to its source", async () => {
    const cache = join(dir, "cache-merged");
    for (const [path, want] of merged) {
      const r = await seekable("cat", `docker://${ref}`, path, "--cache-dir", cache);
      expect(r.code, describeRun(r)).toBe(0);
      expect(sha(r.stdout), path).toBe(sha(want));
    }
  });

  it("reads every file of every layer (seekable, reference and plain tar.gz layers)", async () => {
    for (let i = 0; i < perLayer.length; i++) {
      for (const [path, want] of perLayer[i]) {
        const r = await seekable(
          "cat",
          `docker://${ref}`,
          path,
          "--layer",
          String(i),
          "--no-cache",
        );
        expect(r.code, describeRun(r)).toBe(0);
        expect(sha(r.stdout), `layer ${i} ${path}`).toBe(sha(want));
      }
    }
  });

  it("opens a layer with at most two requests and fetches only what a file needs", async () => {
    const r = await seekable("ls", `docker://${ref}`, "--layer", "0", "--stats", "--no-cache");
    expect(r.code, describeRun(r)).toBe(0);
    const stats = statsOf(r.stderr);
    // One manifest GET plus one tail read (the TOC fits in it).
    expect(stats.requests).toBeLessThanOrEqual(2);
    const c = await seekable(
      "cat",
      `docker://${ref}`,
      "etc/passwd",
      "--layer",
      "0",
      "--stats",
      "--no-cache",
    );
    expect(c.code, describeRun(c)).toBe(0);
    const cs = statsOf(c.stderr);
    expect(cs.requests).toBeLessThanOrEqual(3);
    const layerSize = (await readFile(join(dir, "l0.blob"))).length;
    expect(cs.bytesFetched).toBeLessThan(layerSize / 4); // not the 3 MiB file
  });

  it("serves a second read from the disk cache", async () => {
    const cache = join(dir, "cache-stats");
    const first = await seekable(
      "cat",
      `docker://${ref}`,
      "usr/lib/big.bin",
      "--layer",
      "0",
      "--stats",
      "--cache-dir",
      cache,
    );
    expect(first.code, describeRun(first)).toBe(0);
    const again = await seekable(
      "cat",
      `docker://${ref}`,
      "usr/lib/big.bin",
      "--layer",
      "0",
      "--stats",
      "--cache-dir",
      cache,
    );
    expect(again.code, describeRun(again)).toBe(0);
    const s1 = statsOf(first.stderr);
    const s2 = statsOf(again.stderr);
    expect(s2.bytesServedFromCache).toBe(3 * 1024 * 1024 + 7);
    expect(s2.bytesFetched).toBeLessThan(s1.bytesFetched);
    expect(sha(again.stdout)).toBe(sha(first.stdout));
  });

  it("verifies every layer against its annotated TOC digest", async () => {
    const r = await seekable("verify", `docker://${ref}`, "--json", "--no-cache");
    expect(r.code, describeRun(r)).toBe(0);
    const out = jsonOut<{ ok: boolean; layers: { tocDigestChecked?: boolean; format: string }[] }>(
      r,
    );
    expect(out.ok).toBe(true);
    expect(out.layers.map((l) => l.format)).toEqual(["estargz", "estargz", "tar.gz"]);
    expect(out.layers[0].tocDigestChecked).toBe(true);
  });

  it("reads a layer through its blob URL, and prints its TOC exactly as stored", async () => {
    const url = `http://${registry.host}/v2/seekable/test/blobs/${layerDigests[1]}`;
    const r = await seekable("toc", url, "--no-cache", "--stats");
    expect(r.code, describeRun(r)).toBe(0);
    expect(sha(r.stdout)).toBe(tocDigests[1]);
    // One suffix range tells the size and brings footer and TOC: a single request.
    expect(statsOf(r.stderr).requests).toBe(1);
    const big = `http://${registry.host}/v2/seekable/test/blobs/${layerDigests[0]}`;
    const b = await seekable("cat", big, "etc/passwd", "--no-cache", "--stats");
    expect(b.code, describeRun(b)).toBe(0);
    expect(b.stdout.toString()).toBe("root:x:0:0:root:/root:/bin/sh\n");
    expect(statsOf(b.stderr).requests).toBe(2);
    const c = await seekable("cat", url, "opt/old/y", "--toc-digest", tocDigests[1], "--no-cache");
    expect(c.code, describeRun(c)).toBe(0);
    expect(c.stdout.toString()).toBe("y");
  });

  it("fails with one clear line when the TOC does not match the annotation", async () => {
    const r = await seekable("cat", `docker://${badRef}`, "etc/passwd", "--no-cache");
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^seekable: .*TOC digest/);
  });

  it("fails with one clear line for an image that does not exist", async () => {
    const r = await seekable("ls", `docker://${registry.host}/seekable/nope:v1`, "--no-cache");
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^seekable: .*(unknown|not found)/i);
  });
});

describe("registry faults while reading lazily (proxy in front of the real registry)", () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await startFaultProxy(registry.url);
  });
  afterAll(async () => {
    await proxy?.close();
  });
  const via = () => `docker://${proxy.host}/seekable/test:v1`;
  const isChunkRead = (req: { headers: Record<string, unknown>; url?: string }) =>
    typeof req.headers.range === "string" &&
    !String(req.headers.range).startsWith("bytes=-") &&
    (req.url ?? "").includes(layerDigests[0]);

  it("never outputs altered bytes: a corrupted chunk is a clear error", async () => {
    proxy.rule = (req) => (isChunkRead(req) ? { kind: "corrupt", at: 100 } : undefined);
    const r = await seekable("cat", via(), "usr/lib/big.bin", "--layer", "0", "--no-cache");
    proxy.rule = undefined;
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout.length).toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^seekable: .*(digest|gzip|corrupt)/i);
  });

  it("recovers from a 503 and from a reset mid-body with the right bytes", async () => {
    let failures = 2;
    proxy.rule = (req) => {
      if (!isChunkRead(req) || failures <= 0) return undefined;
      failures--;
      return failures === 1 ? { kind: "status", status: 503 } : { kind: "reset", after: 1000 };
    };
    const r = await seekable("cat", via(), "usr/lib/big.bin", "--layer", "0", "--no-cache");
    proxy.rule = undefined;
    expect(r.code, describeRun(r)).toBe(0);
    expect(failures).toBe(0);
    expect(proxy.log.some((e) => e.fault === "reset")).toBe(true);
    expect(sha(r.stdout)).toBe(sha(merged.get("usr/lib/big.bin") as Buffer));
  });

  it("falls back to single ranges when multi-range is refused, with the right bytes", async () => {
    proxy.rule = (req) =>
      typeof req.headers.range === "string" && String(req.headers.range).includes(",")
        ? { kind: "status", status: 501 }
        : undefined;
    // Layer 0 holds a 3 MiB file between these two: their chunks are two ranges apart.
    const paths = ["etc/passwd", "usr/lib/small.txt", "opt/old/x"];
    const r = await seekable("cat", via(), ...paths, "--layer", "0", "--no-cache");
    proxy.rule = undefined;
    expect(r.code, describeRun(r)).toBe(0);
    expect(proxy.log.some((e) => e.status === 501)).toBe(true);
    const want = Buffer.concat(paths.map((p) => perLayer[0].get(p) as Buffer));
    expect(sha(r.stdout)).toBe(sha(want));
  });
});
