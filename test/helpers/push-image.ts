// Images pushed to the real registry by tests: eStargz layers (blob + TOC digest), an OCI
// manifest naming them in order (a layer may be named more than once), a minimal config
// (with the layers' diff IDs when they are given: what a runtime needs to unpack or run it).
import {
  type Descriptor,
  parseReference,
  pushBlob,
  putManifest,
  type RegistryClient,
  type Repository,
} from "@seekable/registry";
import { sha } from "./tar.js";

export interface PushedLayer {
  blob: Buffer;
  /** The TOC digest annotation (eStargz); none for a plain layer. */
  toc?: string;
  /** The uncompressed digest, for the config's rootfs.diff_ids. */
  diffId?: string;
  /** eStargz: the `io.containers.estargz.uncompressed-size` annotation. */
  uncompressedSize?: number;
}

/**
 * Pushes `layers` and a manifest listing them as `order` says (indexes into `layers`,
 * default each once, bottom first) under `repo:tag`; returns `HOST/NAME:tag`.
 */
export async function pushImage(
  client: RegistryClient,
  repo: Repository,
  tag: string,
  layers: PushedLayer[],
  order: number[] = layers.map((_, i) => i),
): Promise<string> {
  const descs: Descriptor[] = [];
  for (const l of layers) {
    const digest = sha(l.blob);
    await pushBlob(client, repo, { digest, size: l.blob.length }, l.blob);
    descs.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest,
      size: l.blob.length,
      ...(l.toc ? { annotations: annotations(l.toc, l.uncompressedSize) } : {}),
    });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: diffIds(layers, order) },
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
      layers: order.map((i) => descs[i]),
    }),
  );
  const r = `${repo.registry}/${repo.repository}:${tag}`;
  await putManifest(
    client,
    parseReference(r),
    manifest,
    "application/vnd.oci.image.manifest.v1+json",
  );
  return r;
}

function annotations(toc: string, uncompressedSize?: number): Record<string, string> {
  const a: Record<string, string> = { "containerd.io/snapshot/stargz/toc.digest": toc };
  if (uncompressedSize !== undefined) {
    a["io.containers.estargz.uncompressed-size"] = String(uncompressedSize);
  }
  return a;
}

/** The config's diff IDs: the layers' in manifest order, when every layer has one. */
function diffIds(layers: PushedLayer[], order: number[]): string[] {
  const ids = order.map((i) => layers[i].diffId);
  return ids.every((d): d is string => d !== undefined) ? ids : [];
}
