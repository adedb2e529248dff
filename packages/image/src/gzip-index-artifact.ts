/**
 * Gzip layer indexes stored beside an image (issue 17): `seekable index` builds one index
 * per plain gzip layer and pushes them as one OCI artifact whose `subject` is the image
 * manifest (referrers API, or the tag fallback: the path profiles take), so the image, its
 * digests and its signatures stay as they are.
 *
 * What an index vouches for: it is found through the referrers of the image manifest and
 * fetched by digest; the artifact must name that manifest as its subject, and each index
 * blob the digest and size of a layer of it, or it is not used. It does not vouch for the
 * layer's bytes as a whole: each chunk read through it is checked against the chunk's
 * sha256, which the index holds; the layer digest itself is checked only when the whole
 * layer is read.
 */
import {
  buildGzipIndex,
  FormatError,
  GZIP_INDEX_MEDIA_TYPE,
  type GzipIndex,
  parseGzipIndex,
  serializeGzipIndex,
  TocIndex,
} from "@seekable/format";
import {
  type Descriptor,
  digestOf,
  fetchBlob,
  getBlob,
  isRegistryError,
  MediaType,
  type Platform,
  type Reference,
  type ReferrersVia,
  type RegistryClient,
  type Repository,
} from "@seekable/registry";
import { artifactSubject, findArtifact, pushArtifact } from "./artifact.js";
import { isEstargzLayer } from "./manifest-rewrite.js";

export const GZIP_INDEX_ARTIFACT_TYPE = "application/vnd.seekable.gzip-index.v1";
/** On each index layer of the artifact: the image layer it indexes. */
export const INDEXED_LAYER_ANNOTATION = "io.seekable.gzip-index.layer";
/** SOCI's default: smaller layers are fetched whole anyway. */
export const DEFAULT_MIN_LAYER_SIZE = 10 << 20;
/** An index blob larger than this is not fetched. */
export const MAX_INDEX_BLOB = 64 << 20;

const GZIP_LAYER_TYPES = new Set<string>([MediaType.OciLayerGzip, MediaType.DockerLayerGzip]);

/** Why a layer gets no index, or undefined when it is indexed. */
export function indexSkipReason(layer: Descriptor, minLayerSize: number): string | undefined {
  if (!GZIP_LAYER_TYPES.has(layer.mediaType)) return `not gzip (${layer.mediaType})`;
  if (isEstargzLayer(layer)) return "eStargz (read through its TOC)";
  if (layer.size < minLayerSize) return `smaller than ${minLayerSize} bytes (fetched whole)`;
  return undefined;
}

export interface IndexImageOptions {
  spanSize?: number;
  minLayerSize?: number;
  platform?: Platform;
  /** Layers indexed at once (default 2). */
  concurrency?: number;
  created?: Date;
  signal?: AbortSignal;
}

export interface IndexedLayer {
  layer: Descriptor;
  index: { digest: string; size: number };
  checkpoints: number;
  uncompressedSize: number;
}

export interface IndexImageResult {
  subject: Descriptor;
  /** The artifact manifest's digest; undefined when no layer was indexed (nothing pushed). */
  digest?: string;
  via?: ReferrersVia;
  indexed: IndexedLayer[];
  skipped: { layer: Descriptor; reason: string }[];
}

/** Indexes the image's gzip layers (one streaming pass each) and pushes the artifact. */
export async function indexImage(
  client: RegistryClient,
  ref: Reference,
  options: IndexImageOptions = {},
): Promise<IndexImageResult> {
  const { signal } = options;
  const minLayerSize = options.minLayerSize ?? DEFAULT_MIN_LAYER_SIZE;
  const { manifest, subject, repo } = await artifactSubject(client, ref, {
    platform: options.platform,
    signal,
  });
  const layers = (manifest.json.layers ?? []) as Descriptor[];
  const skipped: IndexImageResult["skipped"] = [];
  const todo: Descriptor[] = [];
  for (const l of layers) {
    const reason = indexSkipReason(l, minLayerSize);
    if (reason) skipped.push({ layer: l, reason });
    else todo.push(l);
  }
  const built: { layer: Descriptor; blob: Buffer; ix: GzipIndex }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const layer = todo[next++];
      const stream = getBlob(client, repo, layer.digest, { size: layer.size, signal });
      try {
        const ix = await buildGzipIndex(stream, {
          spanSize: options.spanSize,
          digest: layer.digest,
          size: layer.size,
        });
        built.push({ layer, blob: serializeGzipIndex(ix), ix });
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        throw new FormatError(`layer ${layer.digest}: ${e.message}`, { cause: e });
      } finally {
        stream.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));
  if (built.length === 0) return { subject, indexed: [], skipped };
  // In the image's layer order: the same image gives the same artifact.
  built.sort((a, b) => layers.indexOf(a.layer) - layers.indexOf(b.layer));
  const blobs = built.map((b) => ({
    descriptor: {
      mediaType: GZIP_INDEX_MEDIA_TYPE,
      digest: digestOf(b.blob),
      size: b.blob.length,
      annotations: { [INDEXED_LAYER_ANNOTATION]: b.layer.digest },
    },
    bytes: b.blob,
  }));
  const created = (options.created ?? new Date()).toISOString();
  const { digest, via } = await pushArtifact(
    client,
    repo,
    GZIP_INDEX_ARTIFACT_TYPE,
    subject,
    blobs,
    created,
    signal,
  );
  return {
    subject,
    digest,
    via,
    skipped,
    indexed: built.map((b, i) => ({
      layer: b.layer,
      index: { digest: blobs[i].descriptor.digest, size: blobs[i].descriptor.size },
      checkpoints: b.ix.checkpoints.length,
      uncompressedSize: b.ix.uncompressedSize,
    })),
  };
}

export interface FoundIndexes {
  /** The artifact manifest's digest. */
  digest: string;
  /** By layer digest: only indexes that name a layer of the image, with its size. */
  indexes: Map<string, GzipIndex>;
  /** One line per index not used, and why. */
  warnings: string[];
}

/**
 * The gzip indexes stored for the image manifest `subject` (the newest artifact, or the one
 * `pinned` names), checked against `layers`; undefined when there is none. A problem with
 * the artifact as a whole throws a FormatError; one with a single index is a warning.
 */
export async function findGzipIndexes(
  client: RegistryClient,
  repo: Repository,
  subjectDigest: string,
  layers: Descriptor[],
  options: { pinned?: string; signal?: AbortSignal } = {},
): Promise<FoundIndexes | undefined> {
  const { signal } = options;
  const found = await findArtifact(
    client,
    repo,
    subjectDigest,
    GZIP_INDEX_ARTIFACT_TYPE,
    "gzip index",
    { pinned: options.pinned, signal },
  );
  if (!found) return undefined;
  const m = found.manifest;
  const name = `gzip index ${m.digest}`;
  const byDigest = new Map(layers.map((l) => [l.digest, l]));
  const indexes = new Map<string, GzipIndex>();
  const warnings: string[] = [];
  for (const d of (m.json.layers ?? []) as Descriptor[]) {
    if (d?.mediaType !== GZIP_INDEX_MEDIA_TYPE) continue;
    const at = `${name}: index ${d.digest}`;
    try {
      if (typeof d.digest !== "string" || !Number.isSafeInteger(d.size) || d.size > MAX_INDEX_BLOB)
        throw new FormatError(`bad descriptor or larger than ${MAX_INDEX_BLOB} bytes`);
      const blob = await fetchBlob(client, repo, d.digest, {
        size: d.size,
        maxBytes: MAX_INDEX_BLOB,
        signal,
      });
      const ix = parseGzipIndex(blob);
      const layer = byDigest.get(ix.layer.digest);
      if (!layer) throw new FormatError(`names layer ${ix.layer.digest}, not one of the image`);
      if (layer.size !== ix.layer.size)
        throw new FormatError(
          `says layer ${layer.digest} is ${ix.layer.size} bytes, not ${layer.size}`,
        );
      // Its tree must build (the reader builds it again): a bad one is refused here, with a
      // warning, rather than failing the open.
      TocIndex.build(Buffer.from(ix.toc), ix.uncompressedSize + 1);
      if (indexSkipReason(layer, 0))
        throw new FormatError(`layer ${layer.digest} is ${indexSkipReason(layer, 0)}`);
      indexes.set(layer.digest, ix);
    } catch (e) {
      if (!(e instanceof FormatError) && !isRegistryError(e)) throw e;
      warnings.push(`${at}: ${(e as Error).message} (the layer is read whole)`);
    }
  }
  return { digest: m.digest, indexes, warnings };
}
