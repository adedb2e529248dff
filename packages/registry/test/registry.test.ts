// Against the real Debian docker-registry: everything pushed with this package's upload code,
// then read back with its manifest, blob, range and RangeSource code.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { type RunningRegistry, startRegistry } from "@seekable/test-kit/registry.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fetchBlob,
  getBlob,
  getImageManifest,
  getManifest,
  headBlob,
  headManifest,
  MediaType,
  parsePlatform,
  parseReference,
  pushBlob,
  putManifest,
  RegistryBlobSource,
  RegistryClient,
  RegistryError,
  readBlobRanges,
} from "../src/index.js";
import { bytes, pushImage, sha256 } from "./util.js";

const run = promisify(execFile);

let registry: RunningRegistry;
let client: RegistryClient;

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ credentials: async () => undefined });
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
});

const ref = (s: string) => parseReference(`${registry.host}/${s}`);

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("upload", () => {
  it("pushes monolithic, skips existing blobs and mounts across repositories", async () => {
    const data = bytes(300_000, 7);
    const d = sha256(data);
    expect(await pushBlob(client, ref("up/a"), { digest: d, size: data.length }, data)).toEqual({
      digest: d,
      size: data.length,
      how: "uploaded",
    });
    expect((await pushBlob(client, ref("up/a"), { digest: d, size: data.length }, data)).how).toBe(
      "existed",
    );
    const mounted = await pushBlob(client, ref("up/b"), { digest: d, size: data.length }, data, {
      mountFrom: "up/a",
    });
    expect(mounted.how).toBe("mounted");
    expect(await headBlob(client, ref("up/b"), d)).toEqual({ digest: d, size: data.length });
  });

  it("pushes a stream in PATCH chunks", async () => {
    const data = bytes(1_000_003, 8);
    const d = sha256(data);
    // Odd piece sizes so chunks straddle them.
    const pieces = function* () {
      for (let i = 0; i < data.length; i += 77_777) yield data.subarray(i, i + 77_777);
    };
    const r = await pushBlob(
      client,
      ref("up/chunked"),
      { digest: d, size: data.length },
      Readable.from(pieces()),
      {
        chunkSize: 256 * 1024,
      },
    );
    expect(r.how).toBe("uploaded");
    expect(Buffer.compare(Buffer.from(await fetchBlob(client, ref("up/chunked"), d)), data)).toBe(
      0,
    );
  });

  it("reports a wrong digest clearly", async () => {
    const data = bytes(1000, 9);
    const wrong = sha256(bytes(1000, 10));
    const err = await pushBlob(client, ref("up/bad"), { digest: wrong, size: 1000 }, data).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toMatch(/^127\.0\.0\.1:\d+\/up\/bad@sha256:[0-9a-f]{64}: digest invalid/);
  });

  it("refuses data whose length differs from the descriptor", async () => {
    const data = bytes(100, 11);
    await expect(
      pushBlob(client, ref("up/len"), { digest: sha256(data), size: 99 }, data),
    ).rejects.toThrow(/100 bytes, descriptor says 99/);
  });
});

describe("blobs", () => {
  const data = bytes(2_000_000, 3);
  const digest = sha256(data);
  const repo = () => ref("blobs/x");
  beforeAll(async () => {
    await pushBlob(client, repo(), { digest, size: data.length }, data, { chunkSize: 1 << 20 });
  });

  it("HEADs, GETs whole (buffer and stream) with the digest verified", async () => {
    expect(await headBlob(client, repo(), digest)).toEqual({ digest, size: data.length });
    expect(await headBlob(client, repo(), sha256(Buffer.from("nope")))).toBeUndefined();
    expect(Buffer.compare(Buffer.from(await fetchBlob(client, repo(), digest)), data)).toBe(0);
    expect(
      Buffer.compare(await collect(getBlob(client, repo(), digest, { size: data.length })), data),
    ).toBe(0);
  });

  it("names the blob in a not-found error", async () => {
    const missing = sha256(Buffer.from("missing"));
    const err = await fetchBlob(client, repo(), missing).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("not-found");
    expect(err.message).toBe(`${registry.host}/blobs/x@${missing}: blob unknown to registry`);
  });

  it("reads single, multi and suffix ranges", async () => {
    const single = await readBlobRanges(client, repo(), digest, [{ start: 100, end: 200 }]);
    expect(Buffer.from(single.data[0] as Uint8Array)).toEqual(data.subarray(100, 200));
    expect(single.size).toBe(data.length);

    const ranges = [
      { start: 5, end: 17 },
      { start: 1_000_000, end: 1_000_500 },
      { start: 1_999_990, end: 2_000_000 },
    ];
    const multi = await readBlobRanges(client, repo(), digest, ranges);
    for (const [i, r] of ranges.entries()) {
      expect(Buffer.from(multi.data[i] as Uint8Array)).toEqual(data.subarray(r.start, r.end));
    }

    const suffix = await readBlobRanges(client, repo(), digest, [{ suffix: 51 }]);
    expect(Buffer.from(suffix.data[0] as Uint8Array)).toEqual(data.subarray(data.length - 51));
    expect(suffix.size).toBe(data.length);
  });

  it("accepts distribution's 200 when multi ranges add up to more than the blob", async () => {
    const small = bytes(1000, 4);
    const d = sha256(small);
    await pushBlob(client, repo(), { digest: d, size: small.length }, small);
    const got = await readBlobRanges(client, repo(), d, [
      { start: 0, end: 800 },
      { start: 500, end: 1000 },
    ]);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(small.subarray(0, 800));
    expect(Buffer.from(got.data[1] as Uint8Array)).toEqual(small.subarray(500));
  });

  it("survives distribution's 416 whose Content-Length lies", async () => {
    // Waiting for the body Content-Length promises would end in a timeout, not this error.
    const err = await readBlobRanges(client, repo(), digest, [
      { start: 3_000_000, end: 3_000_010 },
    ]).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("range");
    expect(err.message).toMatch(/range not satisfiable \(blob is 2000000 bytes\)$/);
    // The pool is still healthy afterwards.
    const ok = await readBlobRanges(client, repo(), digest, [{ start: 0, end: 10 }]);
    expect(Buffer.from(ok.data[0] as Uint8Array)).toEqual(data.subarray(0, 10));
  });

  it("serves many random ranges through RegistryBlobSource, coalesced and multi-ranged", async () => {
    const source = await RegistryBlobSource.open(client, repo(), digest);
    expect(source.size).toBe(data.length);
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let asked = 0;
    for (let round = 0; round < 20; round++) {
      const ranges = Array.from({ length: 1 + rnd(60) }, () => {
        const offset = rnd(data.length);
        return { offset, length: Math.min(rnd(rnd(2) ? 100 : 70_000), data.length - offset) };
      });
      asked += ranges.length;
      const got = await source.read(ranges);
      ranges.forEach((r, i) => {
        expect(
          Buffer.compare(
            Buffer.from(got[i] as Uint8Array),
            data.subarray(r.offset, r.offset + r.length),
          ),
        ).toBe(0);
      });
    }
    expect(client.hostQuirks(registry.host).multiRange).toBe(true);
    expect(source.stats.requests).toBeGreaterThan(0);
    expect(source.stats.requests).toBeLessThan(asked / 4);
    expect(source.stats.bytesFetched).toBeGreaterThan(0);
    expect(source.stats.bytesFetched).toBeLessThanOrEqual(data.length * 20 + 100_000);
  });

  it("reads with single ranges only when told to", async () => {
    const source = new RegistryBlobSource(client, repo(), digest, data.length, {
      maxRangesPerRequest: 1,
      gap: 0,
    });
    const ranges = [
      { offset: 0, length: 10 },
      { offset: 10, length: 5 }, // adjacent: merged
      { offset: 500_000, length: 1 },
      { offset: 1_999_999, length: 1 },
      { offset: 7, length: 0 },
    ];
    const got = await source.read(ranges);
    for (const [i, r] of ranges.entries()) {
      expect(Buffer.from(got[i] as Uint8Array)).toEqual(
        data.subarray(r.offset, r.offset + r.length),
      );
    }
    expect(source.stats.requests).toBe(3);
  });

  it("rejects out-of-bounds ranges without a request", async () => {
    const source = new RegistryBlobSource(client, repo(), digest, data.length);
    await expect(source.read([{ offset: data.length - 1, length: 2 }])).rejects.toThrow(RangeError);
    expect(source.stats.requests).toBe(0);
  });

  it("aborts a read through its signal", async () => {
    const source = new RegistryBlobSource(client, repo(), digest, data.length);
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await expect(source.read([{ offset: 0, length: 10 }], ac.signal)).rejects.toThrow("stop");
  });
});

describe("manifests", () => {
  it("puts, gets by tag and digest, and HEADs", async () => {
    const r = ref("img/one:v1");
    const img = await pushImage(client, r, bytes(5000, 21));
    const byTag = await getManifest(client, r);
    expect(byTag.mediaType).toBe(MediaType.OciManifest);
    expect(byTag.digest).toBe(img.manifestDigest);
    expect(Buffer.from(byTag.bytes)).toEqual(img.manifest);
    const byDigest = await getManifest(client, {
      ...r,
      tag: undefined,
      digest: img.manifestDigest,
    });
    expect(byDigest.digest).toBe(img.manifestDigest);
    expect(await headManifest(client, r)).toEqual({
      mediaType: MediaType.OciManifest,
      digest: img.manifestDigest,
      size: img.manifest.length,
    });
    expect(await headManifest(client, ref("img/one:nope"))).toBeUndefined();
  });

  it("keeps Docker manifests' media type", async () => {
    const r = ref("img/docker:v1");
    const layer = bytes(100, 22);
    const config = Buffer.from("{}");
    await pushBlob(client, r, { digest: sha256(layer), size: 100 }, layer);
    await pushBlob(client, r, { digest: sha256(config), size: 2 }, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: MediaType.DockerConfig, digest: sha256(config), size: 2 },
        layers: [{ mediaType: MediaType.DockerLayerGzip, digest: sha256(layer), size: 100 }],
      }),
    );
    await putManifest(client, r, manifest, MediaType.DockerManifest);
    const got = await getManifest(client, r);
    expect(got.mediaType).toBe(MediaType.DockerManifest);
    expect(Buffer.from(got.bytes)).toEqual(manifest);
  });

  it("selects a platform from an index", async () => {
    const amd = await pushImage(client, ref("img/multi:amd64"), bytes(1000, 31), "amd64");
    const arm = await pushImage(client, ref("img/multi:arm64"), bytes(1000, 32), "arm64");
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          {
            mediaType: MediaType.OciManifest,
            digest: amd.manifestDigest,
            size: amd.manifest.length,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: MediaType.OciManifest,
            digest: arm.manifestDigest,
            size: arm.manifest.length,
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
          },
        ],
      }),
    );
    const r = ref("img/multi:latest");
    await putManifest(client, r, index, MediaType.OciIndex);
    const got = await getImageManifest(client, r, { platform: parsePlatform("linux/arm64") });
    expect(got.manifest.digest).toBe(arm.manifestDigest);
    expect(got.index?.mediaType).toBe(MediaType.OciIndex);
    expect(
      (await getImageManifest(client, r, { platform: parsePlatform("linux/x86_64") })).manifest
        .digest,
    ).toBe(amd.manifestDigest);
    await expect(
      getImageManifest(client, r, { platform: parsePlatform("linux/s390x") }),
    ).rejects.toThrow(
      `${registry.host}/img/multi:latest: no manifest for linux/s390x (available: linux/amd64, linux/arm64/v8)`,
    );
  });

  it("says manifest unknown for a missing tag", async () => {
    const err = await getManifest(client, ref("img/one:missing")).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(`${registry.host}/img/one:missing: manifest unknown`);
    expect(err.kind).toBe("not-found");
  });
});

describe("interoperability with skopeo", () => {
  it("reads an image skopeo pushed, byte for byte", async () => {
    const dir = await mkdtemp(join(tmpdir(), "seekable-oci-"));
    try {
      // Gzip, or skopeo compresses the layer on the way (a new digest).
      const layer = gzipSync(bytes(40_000, 51));
      const config = Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          rootfs: { type: "layers", diff_ids: [sha256(layer)] },
        }),
      );
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
          layers: [
            {
              mediaType: MediaType.OciLayerGzip,
              digest: sha256(layer),
              size: layer.length,
              annotations: { "x.y": "z" },
            },
          ],
        }),
      );
      await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
      for (const b of [layer, config, manifest])
        await writeFile(join(dir, "blobs", "sha256", sha256(b).slice(7)), b);
      await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      await writeFile(
        join(dir, "index.json"),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: MediaType.OciManifest,
              digest: sha256(manifest),
              size: manifest.length,
              annotations: { "org.opencontainers.image.ref.name": "t" },
            },
          ],
        }),
      );
      await run(
        "skopeo",
        [
          "copy",
          "--quiet",
          "--dest-tls-verify=false",
          `oci:${dir}:t`,
          `docker://${registry.host}/skopeo/img:t`,
        ],
        {
          env: { ...process.env, HOME: dir },
        },
      );
      // skopeo may re-serialize the manifest on copy: compare with what it says it stored.
      const { stdout } = await run(
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/skopeo/img:t`],
        {
          env: { ...process.env, HOME: dir },
          encoding: "buffer",
        },
      );
      const got = await getManifest(client, ref("skopeo/img:t"));
      expect(Buffer.from(got.bytes)).toEqual(stdout);
      expect(got.json.layers?.[0]?.digest).toBe(sha256(layer));
      const source = await RegistryBlobSource.open(client, ref("skopeo/img"), sha256(layer));
      const [tail] = await source.read([{ offset: layer.length - 51, length: 51 }]);
      expect(Buffer.from(tail as Uint8Array)).toEqual(layer.subarray(layer.length - 51));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
