import {
  FileRangeSource,
  LayerReader,
  NotEStargzError,
  NotFoundError,
  type RangeSource,
} from "@seekable/format";
import {
  type Descriptor,
  getBlob,
  getImageManifest,
  parseBlobUrl,
  parsePlatform,
  parseReference,
  type Reference,
  RegistryBlobSource,
  type RegistryClient,
  readBlobRanges,
} from "@seekable/registry";
import { CountingSource } from "./counting-source.js";
import { ImageFS } from "./image-fs.js";
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
  /** What BLOB named: one layer (a file, a blob URL, or an image narrowed to one layer) or an image. */
  kind: "layer" | "image";
  layers: OpenedLayer[];
  fs: ImageFS;
  close(): Promise<void>;
}

export interface TargetOptions {
  client: () => RegistryClient;
  stats: ReadStats;
  cache?: import("@seekable/format").ChunkCache;
  tocDigest?: string;
  platform?: string;
  /** Index (0 = bottom) or digest of the one layer to use. */
  layer?: string;
  signal?: AbortSignal;
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

/** Bytes read from a blob's end at open: the TOC is usually inside, else one more read. */
export function tailSizeFor(blobSize: number): number {
  return Math.min(512 << 10, Math.max(16 << 10, Math.floor(blobSize / 200)));
}

/**
 * Opens BLOB as the CLI contract says: a local file, `http(s)://HOST/v2/NAME/blobs/DIGEST`,
 * or `docker://REF` (the whole image, or one layer with `layer`).
 */
export async function openTarget(blob: string, opts: TargetOptions): Promise<OpenedTarget> {
  if (/^https?:\/\//.test(blob)) {
    const { reference, plainHttp } = parseBlobUrl(blob);
    const client = opts.client();
    // The URL's scheme is the transport: https is TLS even on loopback, http is not upgraded
    // (the client then sends credentials only where plain HTTP was allowed explicitly).
    client.useScheme(reference.registry, plainHttp ? "http" : "https");
    const layer = await openRegistryLayer(
      client,
      reference,
      reference.digest as string,
      undefined,
      opts,
    );
    return single(layer);
  }
  if (blob.startsWith("docker://")) return openImage(blob.slice("docker://".length), opts);
  const src = await FileRangeSource.open(blob);
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

async function openImage(refText: string, opts: TargetOptions): Promise<OpenedTarget> {
  const ref = parseReference(refText);
  const client = opts.client();
  const { manifest } = await getImageManifest(client, ref, {
    platform: opts.platform ? parsePlatform(opts.platform) : undefined,
    signal: opts.signal,
  });
  performance.mark("open: manifest received");
  let descs = manifest.json.layers ?? [];
  if (opts.layer !== undefined) {
    const i = /^\d+$/.test(opts.layer)
      ? Number(opts.layer)
      : descs.findIndex((d) => d.digest === opts.layer);
    if (i < 0 || i >= descs.length) throw new LayerNotFoundError(opts.layer, descs.length);
    descs = [descs[i]];
  }
  const opened: OpenedLayer[] = [];
  try {
    // Layers open concurrently: each costs one or two small requests.
    const results = await Promise.allSettled(
      descs.map((d, i) => openRegistryLayer(client, ref, d.digest, d, opts, `layer ${i}`)),
    );
    for (const r of results) if (r.status === "fulfilled") opened.push(r.value);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (e) {
    await Promise.all(
      opened.map((l) => (l.view instanceof WholeLayer ? l.view.close() : undefined)),
    );
    throw e;
  }
  return {
    kind: opts.layer !== undefined ? "layer" : "image",
    layers: opened,
    fs: new ImageFS(opened.map((l) => l.view)),
    close: async () => {
      await Promise.all(
        opened.map((l) => (l.view instanceof WholeLayer ? l.view.close() : undefined)),
      );
    },
  };
}

async function openRegistryLayer(
  client: RegistryClient,
  ref: Reference,
  digest: string,
  desc: Descriptor | undefined,
  opts: TargetOptions,
  label = "layer",
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
  const source: RangeSource = await RegistryBlobSource.open(client, repo, digest, {
    size,
    signal: opts.signal,
  });
  const expected = desc?.annotations?.[TOC_DIGEST_ANNOTATION] ?? opts.tocDigest;
  try {
    if (tail === undefined && source.size > 0) {
      const length = Math.min(source.size, tailSizeFor(source.size));
      [tail] = await source.read([{ offset: source.size - length, length }], opts.signal);
    }
    performance.mark(`open: ${label} tail received`);
    const reader = await LayerReader.open(source, {
      tocDigest: expected,
      cache: opts.cache,
      tailSize: tailSizeFor(source.size),
      tail,
      signal: opts.signal,
    });
    performance.mark(`open: ${label} TOC ready`);
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
