import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LayoutServer, OciLayout, parseRanges } from "@seekable/image";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir: string;
let server: LayoutServer;
let base: string;
const blob = randomBytes(100_000);
const blobDigest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    layers: [
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: blobDigest,
        size: blob.length,
      },
    ],
  }),
);
const manifestDigest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seekable-layout-"));
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, "blobs", "sha256", blobDigest.slice(7)), blob);
  await writeFile(join(dir, "blobs", "sha256", manifestDigest.slice(7)), manifest);
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: manifestDigest,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": "v1" },
        },
      ],
    }),
  );
  server = new LayoutServer(await OciLayout.open(dir));
  base = `http://${await server.listen()}`;
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LayoutServer", () => {
  it("answers /v2/, manifests by tag and digest, HEAD with the digest header", async () => {
    expect((await fetch(`${base}/v2/`)).status).toBe(200);
    const byTag = await fetch(`${base}/v2/any/name/manifests/v1`);
    expect(byTag.status).toBe(200);
    expect(byTag.headers.get("docker-content-digest")).toBe(manifestDigest);
    expect(Buffer.from(await byTag.arrayBuffer()).equals(manifest)).toBe(true);
    const head = await fetch(`${base}/v2/x/blobs/${blobDigest}`, { method: "HEAD" });
    expect(head.headers.get("content-length")).toBe(String(blob.length));
    expect(head.headers.get("accept-ranges")).toBe("bytes");
    expect((await fetch(`${base}/v2/x/manifests/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v2/x/blobs/sha256:${"0".repeat(64)}`)).status).toBe(404);
  });

  it("serves single, open-ended and suffix ranges", async () => {
    const r = await fetch(`${base}/v2/x/blobs/${blobDigest}`, {
      headers: { range: "bytes=10-19" },
    });
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe(`bytes 10-19/${blob.length}`);
    expect(Buffer.from(await r.arrayBuffer()).equals(blob.subarray(10, 20))).toBe(true);
    const s = await fetch(`${base}/v2/x/blobs/${blobDigest}`, { headers: { range: "bytes=-51" } });
    expect(Buffer.from(await s.arrayBuffer()).equals(blob.subarray(blob.length - 51))).toBe(true);
    const o = await fetch(`${base}/v2/x/blobs/${blobDigest}`, {
      headers: { range: "bytes=99990-" },
    });
    expect(Buffer.from(await o.arrayBuffer()).equals(blob.subarray(99990))).toBe(true);
    const bad = await fetch(`${base}/v2/x/blobs/${blobDigest}`, {
      headers: { range: "bytes=200000-" },
    });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${blob.length}`);
  });

  it("serves multi-range requests as multipart/byteranges", async () => {
    const r = await fetch(`${base}/v2/x/blobs/${blobDigest}`, {
      headers: { range: "bytes=0-9,500-599" },
    });
    expect(r.status).toBe(206);
    const ct = r.headers.get("content-type") ?? "";
    const boundary = /boundary=(.+)$/.exec(ct)?.[1] as string;
    expect(boundary).toBeTruthy();
    const body = Buffer.from(await r.arrayBuffer());
    expect(body.length).toBe(Number(r.headers.get("content-length")));
    const parts = body.toString("latin1").split(`--${boundary}`).slice(1, -1);
    expect(parts).toHaveLength(2);
    const payload = (p: string) => Buffer.from(p.slice(p.indexOf("\r\n\r\n") + 4, -2), "latin1");
    expect(payload(parts[0]).equals(blob.subarray(0, 10))).toBe(true);
    expect(payload(parts[1]).equals(blob.subarray(500, 600))).toBe(true);
  });

  it("parses any satisfiable range within the blob", () => {
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.nat(1_000_000),
        fc.integer({ min: 1, max: 2_000_000 }),
        (a, len, size) => {
          const r = parseRanges(`bytes=${a}-${a + len}`, size);
          if (a >= size) return r === undefined;
          return r !== undefined && r[0][0] === a && r[0][1] === Math.min(a + len, size - 1);
        },
      ),
    );
  });
});
