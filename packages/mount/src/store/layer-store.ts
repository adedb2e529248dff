import {
  type ChunkCache,
  type GzipIndex,
  type LayerReader,
  type Node,
  SeekableError,
} from "@seekable/format";
import {
  ImageFS,
  IndexedLayer,
  type LayerView,
  type MergedNode,
  type OpenedLayer,
  openEStargzBlob,
  TOC_DIGEST_ANNOTATION,
} from "@seekable/reader";
import {
  type Descriptor,
  fetchBlob,
  formatReference,
  getImageManifest,
  parseReference,
  type Reference,
  RegistryBlobSource,
  type RegistryClient,
} from "@seekable/registry";
import type { Operations } from "fuse-native";
import { Inodes } from "../attr.js";
import { ChunkPool } from "../chunks.js";
import { Content } from "../content.js";
import { fuseOperations } from "../fuse-ops.js";
import { type GuessOptions, guessers } from "../guess/guessers.js";
import { type FirstReadListener, Guessing } from "../guess/guessing.js";
import { describe, LineLog } from "../host.js";
import { LinkEstimate } from "../link-estimate.js";
import { ProfilePrefetch } from "../prefetch.js";
import { layerInfo } from "./info.js";
import { OverlayLayerView } from "./overlay-view.js";

/** How long a resolved manifest and config are reused (the reference: 120 s). */
const MANIFEST_TTL = 120_000;
/** Inode numbers: layer N's files get N * LAYER_INODES + their own number. */
export const LAYER_INODES = 1 << 22;
/** A layer no `use` counts is freed after this long without a request (default). */
const RELEASE_AFTER = 120_000;
/** Verified chunks each layer's pool keeps at hand (the chunk cache is behind it). */
const LAYER_RECENT_BYTES = 16 << 20;

/** A start-up profile for an image: its paths (first-access order) and its name in messages. */
export interface StoreProfile {
  paths: string[];
  name: string;
}

export interface StoreOptions extends GuessOptions {
  /** The registry client (credentials, plain HTTP) every layer is read with. */
  client: RegistryClient;
  /** The chunk cache every layer shares (memory, disk). */
  cache?: ChunkCache;
  /** Bytes fetched ahead of sequential reads (default: the mount's). */
  readAhead?: number;
  /** One line for the user (stderr): failed reads and lookups, cleared stale mounts. */
  log(line: string): void;
  /**
   * `--prefetch`: the profile of an image (a file: the same for every image; auto: the one
   * stored beside it in the registry), asked once per image manifest when the image's layers
   * are first resolved; undefined when there is none (the caller says why). A rejection is a
   * warning, and the image is read on demand.
   */
  profile?(image: { ref: Reference; manifestDigest: string }): Promise<StoreProfile | undefined>;
  /**
   * Gzip layer indexes stored beside an image (`seekable index`), by layer digest, looked up
   * with its manifest: a plain gzip layer with one is served lazily through it.
   */
  gzipIndexes?(
    manifestDigest: string,
    layers: Descriptor[],
    ref: Reference,
  ): Promise<Map<string, GzipIndex> | undefined>;
  /**
   * A resolved layer is freed (reader, TOC index, chunk pool) once no `use` counts it, none
   * of its files is open and no request reached it for this long (default 120 s); a later
   * access resolves it again.
   */
  releaseAfterMs?: number;
  /** The clock layers and images age by (tests set it). */
  now?: () => number;
}

/** An image as the store knows it: its manifest and config, fetched on first access. */
export interface ImageEntry {
  ref: Reference;
  loaded?: Promise<Loaded>;
  /** When `loaded` was fetched. */
  at: number;
  uses: number;
  /** Last asked about (an image not asked about for long is forgotten). */
  lastUsed: number;
  /** The manifest whose prefetch was started on the image's first access. */
  prefetched?: string;
  /** The profile found for a manifest digest (looked up once). */
  profile?: { digest: string; found: Promise<StoreProfile | undefined> };
  /**
   * What the dynamic loader reads next, over the image's merged lazy layers (once they
   * have resolved; dropped when one of them is freed).
   */
  loader?: { digest: string; fs?: ImageFS; guessers?: FirstReadListener };
}

/** A layer opened for `diff/` and `blob`. Shared by every image that has it. */
export interface LayerEntry {
  key: string;
  id: number;
  desc: Descriptor;
  source: RegistryBlobSource;
  /** The layer's files: an eStargz reader, or a gzip layer read through its index. */
  reader: LayerView;
  /** Set when the layer is eStargz. */
  estargz?: LayerReader;
  ops: Operations;
  rootIno: number;
  /** Last request that reached the layer. */
  lastUsed: number;
  /** Files of it open (diff/ files, blob). */
  open: number;
  /** Aborted when the layer is freed (stops its prefetch). */
  freed: AbortController;
  /** Image manifests whose profile was prefetched into it. */
  prefetched: Set<string>;
  content: Content;
  /** Images that asked for this layer (their loader prefetch reads through it). */
  images: Set<ImageEntry>;
}

/** Inode numbers of one layer's files, apart from every other layer's and the store's own. */
class LayerInodes extends Inodes {
  constructor(private readonly base: number) {
    super();
  }

  override of(node: Node): number {
    return this.base + (super.of(node) % LAYER_INODES);
  }
}

/** The image reference a store directory names (base64 of the reference), or undefined. */
export function decodeRef(name: string): Reference | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(name)) return undefined;
  const text = Buffer.from(name, "base64").toString("utf8");
  if (Buffer.from(text, "utf8").toString("base64") !== name) return undefined;
  try {
    return parseReference(text);
  } catch {
    return undefined;
  }
}

/** An image's manifest digest, layer descriptors and diff IDs. */
interface Loaded {
  digest: string;
  layers: Descriptor[];
  diffIds: string[];
  /** Gzip layer indexes stored beside the image, by layer digest. */
  indexes?: Map<string, GzipIndex>;
}

/** The layers the store serves lazily: eStargz ones, and gzip ones with an index. */
function lazyLayers(loaded: Loaded): Descriptor[] {
  return loaded.layers.filter(
    (d) => d.annotations?.[TOC_DIGEST_ANNOTATION] || loaded.indexes?.has(d.digest),
  );
}

/**
 * An Additional Layer Store for containers/storage (podman, CRI-O), as the reference
 * (stargz-snapshotter's `store` package) lays it out:
 * `DIR/<base64 image reference>/<layer digest>/{diff/,info,blob,use}`. A layer resolves on
 * first access of `diff` or `blob`; one that is not eStargz (no TOC digest annotation, or it
 * does not verify) answers EIO there, so containers/storage pulls it the ordinary way.
 *
 * Lifetime, after the reference: `use` counts a layer in use (podman creates it when it
 * pulls the image) and removing the layer's directory uncounts it (podman, when the image is
 * removed). The reference frees a layer as soon as its count drops to 0, and its inodes once
 * the kernel has forgotten them. Here a layer is freed (reader, TOC index, chunk pool; the
 * chunk cache is shared and keeps its chunks) when its count is 0, none of its files is open,
 * and no request reached it for `releaseAfterMs`: a layer read without `use` (directly, or
 * by an image removed and pulled again) is not resolved again for every access. A later
 * access resolves it again, with the same inode numbers.
 */
export class LayerStore {
  private readonly images = new Map<string, ImageEntry>();
  private readonly layers = new Map<string, Promise<LayerEntry>>();
  /** Layers resolved and not freed, by key. */
  private readonly resolved = new Map<string, LayerEntry>();
  /** A layer's store-wide id (its inode numbers), kept when it is freed. */
  private readonly layerIds = new Map<string, number>();
  /** `use` counts by layer digest. */
  private readonly uses = new Map<string, number>();
  /** The registry link, measured by every layer's reads (each layer has its own pool). */
  private readonly link = new LinkEstimate();
  /** Every image's guessers share one set of bounds: the store is one process for the node. */
  private readonly guessing = new Guessing();
  private readonly profiles = new ProfilePrefetch();
  private readonly closed = new AbortController();
  private nextLayer = 1;
  private nextIno = 2;
  private readonly inos = new Map<string, number>();
  private readonly errors: LineLog;
  readonly releaseAfterMs: number;

  private readonly now: () => number;

  constructor(private readonly opts: StoreOptions) {
    this.now = opts.now ?? Date.now;
    this.releaseAfterMs = opts.releaseAfterMs ?? RELEASE_AFTER;
    this.errors = new LineLog(opts.log, 5000, this.now);
  }

  /** A stable inode for a store-level path (root is 1). */
  ino(path: string): number {
    let n = this.inos.get(path);
    if (n === undefined) {
      n = this.nextIno++ % LAYER_INODES;
      this.inos.set(path, n);
    }
    return n;
  }

  /** One line per cause, not one per kernel request. */
  report(line: string): void {
    this.errors.report(line);
  }

  image(name: string): ImageEntry | undefined {
    let e = this.images.get(name);
    if (e) return e;
    const ref = decodeRef(name);
    if (!ref) return undefined;
    e = { ref, at: 0, uses: 0, lastUsed: this.now() };
    this.images.set(name, e);
    return e;
  }

  /** The image's manifest digest, layer descriptors and diff IDs (cached MANIFEST_TTL while not in use). */
  load(img: ImageEntry): Promise<Loaded> {
    img.lastUsed = this.now();
    if (img.loaded && (img.uses > 0 || this.now() - img.at < MANIFEST_TTL)) return img.loaded;
    img.at = this.now();
    const client = this.opts.client;
    const loaded = (async () => {
      const { manifest } = await getImageManifest(client, img.ref);
      const config = manifest.json.config;
      if (!config)
        throw new SeekableError(`${formatReference(img.ref)}: the manifest has no config`, "input");
      const repo = { registry: img.ref.registry, repository: img.ref.repository };
      const bytes = await fetchBlob(client, repo, config.digest, { size: config.size });
      const json = JSON.parse(Buffer.from(bytes).toString("utf8")) as {
        rootfs?: { diff_ids?: string[] };
      };
      const layers = manifest.json.layers ?? [];
      return {
        digest: manifest.digest,
        layers,
        diffIds: json.rootfs?.diff_ids ?? [],
        indexes: await this.opts.gzipIndexes?.(manifest.digest, layers, img.ref),
      };
    })();
    img.loaded = loaded;
    loaded.catch(() => {
      if (img.loaded === loaded) img.loaded = undefined; // a failure is not kept
    });
    return loaded;
  }

  async info(img: ImageEntry, digest: string): Promise<Buffer> {
    const { layers, diffIds, indexes } = await this.load(img);
    return Buffer.from(layerInfo(layers, diffIds, digest, indexes?.get(digest)?.uncompressedSize));
  }

  /**
   * The opened layer (resolved once per layer digest, whichever image asks first). The
   * image's other layers start resolving too, as the reference does: containers/storage
   * looks at every layer of the image next. With a profile, the image's first access (and a
   * layer's first resolution) starts its prefetch.
   */
  async layer(img: ImageEntry, digest: string): Promise<LayerEntry> {
    const loaded = await this.load(img);
    const desc = loaded.layers.find((l) => l.digest === digest);
    if (!desc)
      throw new SeekableError(
        `unknown digest ${digest} for ref ${formatReference(img.ref)}`,
        "not-found",
      );
    let created = false;
    const p = this.resolve(img.ref, desc, loaded.indexes?.get(desc.digest), () => {
      created = true;
    });
    for (const d of lazyLayers(loaded)) {
      if (d !== desc) {
        this.resolve(img.ref, d, loaded.indexes?.get(d.digest), () => {
          created = true;
        }).catch(() => {}); // reported when asked for
      }
    }
    if (this.opts.profile && (created || img.prefetched !== loaded.digest)) {
      img.prefetched = loaded.digest;
      void this.prefetchImage(img, loaded);
    }
    if (this.opts.guess !== false && img.loader?.digest !== loaded.digest) {
      void this.startLoader(img, loaded);
    }
    const entry = await p;
    entry.images.add(img);
    entry.lastUsed = this.now();
    return entry;
  }

  /**
   * The image's loader prefetch: its lazy layers merged as overlayfs will show them (a layer
   * that is not eStargz is left out: a guess it spoils costs bytes, never a wrong answer,
   * since every read is served by its own layer), each file read through its layer's pool.
   */
  private async startLoader(img: ImageEntry, loaded: Loaded): Promise<void> {
    const state: NonNullable<ImageEntry["loader"]> = { digest: loaded.digest };
    img.loader = state;
    const descs = lazyLayers(loaded);
    const settled = await Promise.allSettled(
      descs.map((d) => this.resolve(img.ref, d, loaded.indexes?.get(d.digest))),
    );
    const entries = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    if (img.loader !== state || entries.length === 0) return;
    if (entries.some((e) => this.resolved.get(e.key) !== e)) return;
    const byReader = new Map<unknown, LayerEntry>(entries.map((e) => [e.reader, e]));
    for (const e of entries) e.images.add(img);
    const fs = new ImageFS(entries.map((e) => e.reader));
    const contentOf = (m: MergedNode) => byReader.get(m.layer)?.content;
    state.fs = fs;
    state.guessers = guessers(fs, contentOf, this.opts, this.guessing);
  }

  /** A file's first read in layer `l`: the loader prefetch of an image that shows it. */
  private firstRead(l: LayerEntry, path: string): void {
    for (const img of l.images) {
      const state = img.loader;
      const m = state?.fs?.lookup(path);
      if (state && m && m.layer === l.reader) {
        state.guessers?.firstRead(m);
        return;
      }
    }
  }

  private resolve(
    ref: Reference,
    desc: Descriptor,
    index?: GzipIndex,
    onCreate?: () => void,
  ): Promise<LayerEntry> {
    const toc = desc.annotations?.[TOC_DIGEST_ANNOTATION];
    // As the reference: a layer without a TOC digest is not served (podman pulls it itself),
    // unless a gzip index stored beside the image serves it.
    if (!toc && !index) {
      return Promise.reject(
        new SeekableError(
          `layer ${desc.digest}: not eStargz (no TOC digest annotation) and no index`,
          "input",
        ),
      );
    }
    const key = `${desc.digest}/${toc ?? "index"}`;
    let p = this.layers.get(key);
    if (!p) {
      onCreate?.();
      p = this.open(ref, desc, toc, index, key);
      this.layers.set(key, p);
      const mine = p;
      p.then(
        (e) => {
          if (this.layers.get(key) === mine) this.resolved.set(key, e);
        },
        () => {
          if (this.layers.get(key) === mine) this.layers.delete(key); // retried on the next access
        },
      );
    }
    return p;
  }

  private async open(
    ref: Reference,
    desc: Descriptor,
    toc: string | undefined,
    index: GzipIndex | undefined,
    key: string,
  ): Promise<LayerEntry> {
    const repo = { registry: ref.registry, repository: ref.repository };
    let source: RegistryBlobSource;
    let estargz: LayerReader | undefined;
    if (toc) {
      ({ source, reader: estargz } = await openEStargzBlob(
        this.opts.client,
        repo,
        desc.digest,
        desc.size,
        { tocDigest: toc, cache: this.opts.cache },
      ));
    } else {
      source = await RegistryBlobSource.open(this.opts.client, repo, desc.digest, {
        size: desc.size,
      });
    }
    const reader: LayerView =
      estargz ?? new IndexedLayer(index as GzipIndex, source, this.opts.cache);
    let id = this.layerIds.get(key);
    if (id === undefined) {
      id = this.nextLayer++;
      this.layerIds.set(key, id);
    }
    const view = new OverlayLayerView(reader);
    const opened: OpenedLayer = { digest: desc.digest, descriptor: desc, view, reader: estargz };
    // Content keys the pool's chunks by layer index: a sparse array gives this layer the
    // store-wide id. Each layer has its own pool, freed with it; they share the link
    // estimate, and the chunk cache behind the readers.
    const layers: OpenedLayer[] = [];
    layers[id] = opened;
    const pool = new ChunkPool(LAYER_RECENT_BYTES, (item) => this.profiles.covering(item), {
      link: this.link,
    });
    const base = id * LAYER_INODES;
    const content = new Content(layers, pool);
    const images = new Set<ImageEntry>();
    let self: LayerEntry | undefined;
    const ops = fuseOperations({
      fs: new ImageFS([view]),
      content,
      firstReads: { firstRead: (m) => self && this.firstRead(self, m.node.path) },
      inodes: new LayerInodes(base),
      readAhead: this.opts.readAhead,
      onError: (path, e) =>
        this.report(`read of ${desc.digest}/diff/${path} failed: ${describe(e)}`),
    });
    self = {
      key,
      id,
      desc,
      source,
      reader,
      estargz,
      ops,
      rootIno: base + 1,
      lastUsed: this.now(),
      open: 0,
      freed: new AbortController(),
      prefetched: new Set(),
      content,
      images,
    };
    return self;
  }

  /**
   * `--prefetch`: the image's profile (looked up once per image manifest, while its layers
   * resolve), fetched into the layers it has not been fetched into yet, once every eStargz
   * layer of the image has resolved (a file's top-most layer is then known): one batched
   * read per layer. A layer that is not served lazily is left out; the profile's paths in it
   * are counted as missing.
   */
  private async prefetchImage(img: ImageEntry, loaded: Loaded): Promise<void> {
    const lookup = this.opts.profile;
    if (!lookup) return;
    const name = formatReference(img.ref);
    if (img.profile?.digest !== loaded.digest) {
      const found = lookup({ ref: img.ref, manifestDigest: loaded.digest }).catch((e) => {
        this.report(`warning: profile for ${name}: ${describe(e)}; reading on demand`);
        return undefined;
      });
      img.profile = { digest: loaded.digest, found };
    }
    const descs = lazyLayers(loaded);
    const settled = await Promise.allSettled(
      descs.map((d) => this.resolve(img.ref, d, loaded.indexes?.get(d.digest))),
    );
    const profile = await img.profile.found;
    if (!profile || this.closed.signal.aborted) return;
    const entries = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const fresh = entries.filter(
      (e) => !e.prefetched.has(loaded.digest) && this.resolved.get(e.key) === e,
    );
    if (fresh.length === 0) return;
    for (const e of fresh) e.prefetched.add(loaded.digest);
    // Stopped when the store closes or one of its layers is freed.
    const stop = new AbortController();
    const abort = () => stop.abort();
    for (const s of [this.closed.signal, ...fresh.map((e) => e.freed.signal)]) {
      s.addEventListener("abort", abort, { once: true });
    }
    try {
      const r = await this.profiles.start(
        {
          fs: new ImageFS(entries.map((e) => e.reader)),
          layers: fresh.map((e) => ({
            digest: e.desc.digest,
            descriptor: e.desc,
            view: e.reader,
            reader: e.estargz,
          })),
        },
        profile.paths,
        stop.signal,
        { skipMissing: true },
      );
      const notes = [
        r.cached > 0 ? `${r.cached} chunks already cached` : "",
        r.missing > 0 ? `${r.missing} of its paths not in the image's lazy layers` : "",
      ].filter((n) => n !== "");
      this.opts.log(
        `prefetched ${r.files} files of profile ${profile.name} into ${fresh.length} layers of ${name}: ${r.chunks} chunks, ${megabytes(r.bytes)} in ${r.reads} batched reads${notes.length > 0 ? ` (${notes.join(", ")})` : ""}, ${(r.ms / 1000).toFixed(2)} s`,
      );
    } catch (e) {
      if (stop.signal.aborted) return;
      // Reads fetch on demand what the prefetch did not bring.
      this.report(`warning: prefetch of profile ${profile.name} for ${name}: ${describe(e)}`);
    } finally {
      for (const s of [this.closed.signal, ...fresh.map((e) => e.freed.signal)]) {
        s.removeEventListener("abort", abort);
      }
    }
  }

  /** `use` created in a layer directory: the layer is in use. */
  use(img: ImageEntry, digest: string): void {
    img.uses++;
    this.uses.set(digest, (this.uses.get(digest) ?? 0) + 1);
  }

  /** The layer directory removed: one use less. */
  release(img: ImageEntry, digest: string): void {
    if (img.uses > 0) img.uses--;
    if (img.uses === 0) img.at = this.now();
    const n = (this.uses.get(digest) ?? 0) - 1;
    if (n > 0) this.uses.set(digest, n);
    else this.uses.delete(digest);
  }

  /** A file of the layer opened (not freed while open) or closed. */
  opened(l: LayerEntry, delta: 1 | -1): void {
    l.open += delta;
    l.lastUsed = this.now();
  }

  /**
   * Frees every resolved layer that no `use` counts, with no file open and no request for
   * `releaseAfterMs`; forgets images not asked about for as long (and MANIFEST_TTL).
   */
  sweep(now = this.now()): void {
    for (const [key, e] of this.resolved) {
      if (e.open > 0 || (this.uses.get(e.desc.digest) ?? 0) > 0) continue;
      if (now - e.lastUsed < this.releaseAfterMs) continue;
      this.resolved.delete(key);
      this.layers.delete(key);
      e.freed.abort();
      for (const img of e.images) img.loader = undefined; // it reads through the freed layer
      this.opts.log(
        `released layer ${e.desc.digest}: not in use and idle for ${Math.round((now - e.lastUsed) / 1000)} s`,
      );
    }
    const idle = Math.max(this.releaseAfterMs, MANIFEST_TTL);
    for (const [name, img] of this.images) {
      if (img.uses === 0 && now - img.lastUsed >= idle) this.images.delete(name);
    }
  }

  /** Stops prefetches (at unmount). */
  close(): void {
    this.closed.abort();
  }
}

function megabytes(n: number): string {
  return n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}
