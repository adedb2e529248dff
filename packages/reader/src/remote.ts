import {
  type ChunkCache,
  FileRangeSource,
  type GzipIndex,
  LayerReader,
  NotEStargzError,
  NotFoundError,
} from "@seekable/format";
import {
  type Descriptor,
  getBlob,
  getImageManifest,
  parsePlatform,
  type Reference,
  RegistryBlobSource,
  type RegistryClient,
  type Repository,
  readBlobRanges,
} from "@seekable/registry";
import { CountingSource } from "./counting-source.js";
import { ImageFS } from "./image-fs.js";
import { IndexedLayer } from "./indexed-layer.js";
import type { LayerView } from "./layer-view.js";
import type { ReadStats } from "./stats.js";
import { WholeLayer } from "./whole-layer.js";

export const TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest";

/** One opened layer: an eStargz reader when the blob is eStargz, else the whole layer. */
export interface OpenedLayer {
  digest?: string;
  descriptor?: Descriptor;
  view: LayerView;
  /** Set when the layer is eStargz (or legacy stargz). */
  reader?: LayerReader;
  /** The TOC digest the layer was checked against, when one was known. */
  expectedTocDigest?: string;
}

export interface OpenedTarget {
  /** What was opened: one layer (a file, a blob, or an image narrowed to one layer) or an image. */
  kind: "layer" | "image";
  layers: OpenedLayer[];
  fs: ImageFS;
  close(): Promise<void>;
}

/** Where the layers to open are: a local file, one registry blob, or an image in a registry. */
export type LayerLocation = LocalLayer | RemoteLayer | RemoteImage;

/** One layer blob in a local file. */
export interface LocalLayer {
  kind: "file";
  path: string;
}

/** One layer blob in a registry, named by digest. */
export interface RemoteLayer {
  kind: "blob";
  registry: string;
  repository: string;
  digest: string;
  /** Pins the transport for this registry (a blob URL's scheme); else the client's default. */
  scheme?: "http" | "https";
}

/** An image in a registry: all its layers, or the one that `layer` names. */
export interface RemoteImage {
  kind: "image";
  reference: Reference;
  /** os/arch[/variant] to pick from an index. */
  platform?: string;
  /** Index (0 = bottom) or digest of the one layer to use. */
  layer?: string;
}

/** What opening a local layer needs. */
export interface LayerOpenOptions {
  stats: ReadStats;
  cache?: import("@seekable/format").ChunkCache;
  /** The TOC digest to check a layer against when its descriptor names none. */
  tocDigest?: string;
  signal?: AbortSignal;
}

/** What opening a registry layer or image needs: the client is made only when needed. */
export interface RemoteOpenOptions extends LayerOpenOptions {
  client: () => RegistryClient;
  /** Gzip layer indexes stored beside an image, by layer digest (`seekable index`). */
  gzipIndexes?: (
    manifestDigest: string,
    layers: Descriptor[],
    signal?: AbortSignal,
  ) => Promise<Map<string, GzipIndex> | undefined>;
}

/** The layer asked for is not in the image. Fields let a caller word it (e.g. name its flag). */
export class LayerNotFoundError extends NotFoundError {
  constructor(
    /** The index or digest that was asked for. */
    readonly layer: string,
    readonly layerCount: number,
  ) {
    super(`layer ${layer} is not in the image: it has ${layerCount} layers (0 is the bottom)`);
  }
}

/**
 * An eStargz layer blob in a registry, opened for lazy reads: the blob as a RangeSource and
 * its reader (footer and TOC from the blob's tail, `tail` when already fetched, checked against
 * `tocDigest` when known). Every host opens registry layers here (images, the layer store).
 */
export async function openEStargzBlob(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  size: number | undefined,
  opts: {
    tocDigest?: string;
    cache?: ChunkCache;
    tail?: Uint8Array;
    signal?: AbortSignal;
    /** Names the layer in performance marks (SEEKABLE_TIMING). */
    label?: string;
  },
): Promise<{ source: RegistryBlobSource; reader: LayerReader }> {
  const source = await RegistryBlobSource.open(client, repo, digest, { size, signal: opts.signal });
  let tail = opts.tail;
  if (tail === undefined && source.size > 0) {
    const length = Math.min(source.size, tailSizeFor(source.size));
    [tail] = await source.read([{ offset: source.size - length, length }], opts.signal);
  }
  performance.mark(`open: ${opts.label ?? "layer"} tail received`);
  const reader = await LayerReader.open(source, {
    tocDigest: opts.tocDigest,
    cache: opts.cache,
    tailSize: tailSizeFor(source.size),
    tail,
    signal: opts.signal,
  });
  performance.mark(`open: ${opts.label ?? "layer"} TOC ready`);
  return { source, reader };
}

/** Bytes read from a blob's end at open: the TOC is usually inside, else one more read. */
export function tailSizeFor(blobSize: number): number {
  return Math.min(512 << 10, Math.max(16 << 10, Math.floor(blobSize / 200)));
}

/** Opens the layers at `location` (one of openLocalLayer, openRemoteLayer, openImage). */
export function openLocation(
  location: LayerLocation,
  opts: RemoteOpenOptions,
): Promise<OpenedTarget> {
  switch (location.kind) {
    case "file":
      return openLocalLayer(location.path, opts);
    case "blob":
      return openRemoteLayer(location, opts);
    case "image":
      return openImage(location, opts);
  }
}

/** Opens one layer blob in a registry. */
export async function openRemoteLayer(
  blob: Omit<RemoteLayer, "kind">,
  opts: RemoteOpenOptions,
): Promise<OpenedTarget> {
  const client = opts.client();
  if (blob.scheme) client.useScheme(blob.registry, blob.scheme);
  const reference: Reference = {
    registry: blob.registry,
    repository: blob.repository,
    digest: blob.digest,
  };
  const layer = await openRegistryLayer(client, reference, blob.digest, undefined, opts);
  return single(layer);
}

/** Opens one layer blob in a local file, read in place. */
export async function openLocalLayer(path: string, opts: LayerOpenOptions): Promise<OpenedTarget> {
  const src = await FileRangeSource.open(path);
  try {
    const reader = await LayerReader.open(new CountingSource(src, opts.stats), {
      tocDigest: opts.tocDigest,
      cache: opts.cache,
      signal: opts.signal,
    });
    return {
      ...single({ view: reader, reader, expectedTocDigest: opts.tocDigest }),
      close: () => src.close(),
    };
  } catch (e) {
    await src.close();
    throw e;
  }
}

function single(layer: OpenedLayer): OpenedTarget {
  return {
    kind: "layer",
    layers: [layer],
    fs: new ImageFS([layer.view]),
    close: async () => {
      if (layer.view instanceof WholeLayer) await layer.view.close();
    },
  };
}

/** Opens an image in a registry: every layer, or the one `image.layer` names. */
export async function openImage(
  image: Omit<RemoteImage, "kind">,
  opts: RemoteOpenOptions,
): Promise<OpenedTarget> {
  const ref = image.reference;
  const client = opts.client();
  const { manifest } = await getImageManifest(client, ref, {
    platform: image.platform ? parsePlatform(image.platform) : undefined,
    signal: opts.signal,
  });
  performance.mark("open: manifest received");
  let descs = manifest.json.layers ?? [];
  const wanted = image.layer;
  if (wanted !== undefined) {
    const i = /^\d+$/.test(wanted) ? Number(wanted) : descs.findIndex((d) => d.digest === wanted);
    if (i < 0 || i >= descs.length) throw new LayerNotFoundError(wanted, descs.length);
    descs = [descs[i]];
  }
  // Layers open concurrently: each costs one or two small requests. A layer listed more
  // than once (an empty layer, or a hostile manifest) is opened once and shown at each place.
  const keyOf = (d: Descriptor) => `${d.digest}/${d.annotations?.[TOC_DIGEST_ANNOTATION] ?? ""}`;
  const firsts = new Map<string, Descriptor>();
  for (const d of descs) if (!firsts.has(keyOf(d))) firsts.set(keyOf(d), d);
  const indexes = await opts.gzipIndexes?.(manifest.digest, descs, opts.signal);
  const results = await Promise.allSettled(
    [...firsts.values()].map((d, i) =>
      openRegistryLayer(client, ref, d.digest, d, opts, `layer ${i}`, indexes?.get(d.digest)),
    ),
  );
  const distinct = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const closeAll = () =>
    Promise.all(distinct.map((l) => (l.view instanceof WholeLayer ? l.view.close() : undefined)));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await closeAll();
    throw (failed as PromiseRejectedResult).reason;
  }
  const byKey = new Map([...firsts.keys()].map((k, i) => [k, distinct[i]]));
  const opened = descs.map((d) => byKey.get(keyOf(d)) as OpenedLayer);
  return {
    kind: wanted !== undefined ? "layer" : "image",
    layers: opened,
    fs: new ImageFS(opened.map((l) => l.view)),
    close: async () => {
      await closeAll();
    },
  };
}

async function openRegistryLayer(
  client: RegistryClient,
  ref: Reference,
  digest: string,
  desc: Descriptor | undefined,
  opts: RemoteOpenOptions,
  label = "layer",
  index?: GzipIndex,
): Promise<OpenedLayer> {
  const repo = { registry: ref.registry, repository: ref.repository };
  // Without a descriptor (a blob URL), one suffix range gives the size and the tail at once.
  let tail: Uint8Array | undefined;
  let size = desc?.size;
  if (size === undefined) {
    const res = await readBlobRanges(client, repo, digest, [{ suffix: 64 << 10 }], {
      signal: opts.signal,
    });
    size = res.size;
    if (size !== undefined) tail = res.data[0];
  }
  const expected = desc?.annotations?.[TOC_DIGEST_ANNOTATION] ?? opts.tocDigest;
  if (index && !expected) {
    const source = await RegistryBlobSource.open(client, repo, digest, {
      size,
      signal: opts.signal,
    });
    opts.stats.layersIndexed++;
    return { digest, descriptor: desc, view: new IndexedLayer(index, source, opts.cache) };
  }
  try {
    const { reader } = await openEStargzBlob(client, repo, digest, size, {
      tocDigest: expected,
      cache: opts.cache,
      tail,
      signal: opts.signal,
      label,
    });
    return { digest, descriptor: desc, view: reader, reader, expectedTocDigest: expected };
  } catch (e) {
    // Not eStargz (no footer): still usable, streamed whole once. A layer that claims a
    // TOC digest but fails is an error, never a silent fallback.
    if (!(e instanceof NotEStargzError) || expected) throw e;
  }
  opts.stats.layersStreamedWhole++;
  const view = await WholeLayer.load(
    getBlob(client, repo, digest, { size: desc?.size, signal: opts.signal }),
    digest,
  );
  return { digest, descriptor: desc, view };
}
