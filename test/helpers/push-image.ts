// Images pushed to the real registry by tests: eStargz layers (blob + TOC digest), an OCI
// manifest naming them in order (a layer may be named more than once), a minimal config.
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
      ...(l.toc ? { annotations: { "containerd.io/snapshot/stargz/toc.digest": l.toc } } : {}),
    });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [] },
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
