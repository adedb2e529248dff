import { createHash, randomBytes } from "node:crypto";
import {
  MediaType,
  pushBlob,
  putManifest,
  type Reference,
  type RegistryClient,
} from "../src/index.js";

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Deterministic pseudo-random bytes, so failures reproduce. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export { randomBytes };

export interface PushedImage {
  ref: Reference;
  layer: Buffer;
  layerDigest: string;
  config: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

/** Pushes a one-layer OCI image with the package's own upload code. */
export async function pushImage(
  client: RegistryClient,
  ref: Reference,
  layer: Buffer,
  arch = "amd64",
): Promise<PushedImage> {
  const config = Buffer.from(
    JSON.stringify({ architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
  );
  const layerDigest = sha256(layer);
  await pushBlob(client, ref, { digest: layerDigest, size: layer.length }, layer);
  await pushBlob(client, ref, { digest: sha256(config), size: config.length }, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = await putManifest(client, ref, manifest, MediaType.OciManifest);
  return { ref, layer, layerDigest, config, manifest, manifestDigest };
}
