import { FormatError } from "@seekable/format";
import { MediaType } from "@seekable/registry";
import { type Descriptor, sha256 } from "./source.js";

export const TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest";
export const UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size";

/** JSON of a manifest or index, with whatever fields it carries. */
export type Json = Record<string, unknown>;

const LAYER_TYPES = new Set<string>([
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.DockerLayerGzip,
  "application/vnd.docker.image.rootfs.diff.tar",
]);

/** Layers the converter turns into eStargz (tar, tar+gzip); others are copied as they are. */
export function isConvertibleLayer(desc: Descriptor): boolean {
  return LAYER_TYPES.has(desc.mediaType) || desc.mediaType === MediaType.OciLayerZstd;
}

/** Already eStargz: the layer carries the TOC digest annotation. */
export function isEstargzLayer(desc: Descriptor): boolean {
  return typeof desc.annotations?.[TOC_DIGEST_ANNOTATION] === "string";
}

export function parseJson(bytes: Uint8Array, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new FormatError(`${what} is not valid JSON`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new FormatError(`${what} is not a JSON object`);
  return v as Json;
}

export interface ConvertedLayer {
  digest: string;
  size: number;
  diffID: string;
  tocDigest: string;
  uncompressedSize: number;
}

/** The descriptor of a converted layer: OCI gzip type, new digest and size, eStargz annotations. */
export function convertedLayerDescriptor(orig: Descriptor, c: ConvertedLayer): Descriptor {
  const { urls: _urls, annotations, ...rest } = orig;
  return {
    ...rest,
    mediaType: MediaType.OciLayerGzip,
    digest: c.digest,
    size: c.size,
    annotations: {
      ...annotations,
      [TOC_DIGEST_ANNOTATION]: c.tocDigest,
      [UNCOMPRESSED_SIZE_ANNOTATION]: String(c.uncompressedSize),
    },
  };
}

/** The config with rootfs.diff_ids replaced; everything else (history, labels) kept. */
export function rewriteConfig(config: Json, diffIDs: string[]): Uint8Array {
  const rootfs = (config.rootfs ?? { type: "layers" }) as Json;
  const out = { ...config, rootfs: { ...rootfs, diff_ids: diffIDs } };
  return Buffer.from(JSON.stringify(out));
}

const CONFIG_TYPES: Record<string, string> = {
  [MediaType.DockerConfig]: MediaType.OciConfig,
};

/** An OCI image manifest with the new config and layers; other fields kept. */
export function rewriteManifest(
  manifest: Json,
  config: Descriptor,
  layers: Descriptor[],
): { desc: Descriptor; bytes: Uint8Array } {
  const origConfig = manifest.config as Descriptor;
  const out: Json = {
    ...manifest,
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: {
      ...origConfig,
      mediaType: CONFIG_TYPES[origConfig.mediaType] ?? origConfig.mediaType,
      digest: config.digest,
      size: config.size,
    },
    layers,
  };
  const bytes = Buffer.from(JSON.stringify(out));
  return {
    desc: { mediaType: MediaType.OciManifest, digest: sha256(bytes), size: bytes.length },
    bytes,
  };
}

/** An OCI index pointing at the converted manifests (platforms and annotations kept). */
export function rewriteIndex(
  index: Json,
  entries: Descriptor[],
): { desc: Descriptor; bytes: Uint8Array } {
  const out: Json = {
    ...index,
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: entries,
  };
  const bytes = Buffer.from(JSON.stringify(out));
  return {
    desc: { mediaType: MediaType.OciIndex, digest: sha256(bytes), size: bytes.length },
    bytes,
  };
}
