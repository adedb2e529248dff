import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { type ChunkCache, LayerReader, type Node } from "@seekable/format";
import {
  ImageFS,
  type MergedNode,
  type OpenedLayer,
  TOC_DIGEST_ANNOTATION,
  tailSizeFor,
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
import type { Operations, Stat } from "fuse-native";
import { Inodes } from "./attr.js";
import { ChunkPool } from "./chunks.js";
import { Content } from "./content.js";
import { Errno } from "./fuse-native.js";
import { fuseOperations } from "./fuse-ops.js";
import { LayerFuse, layerFuseOptions, refuseWrites, statfsReply } from "./fuse-setup.js";
import { type GuessOptions, guessers } from "./guess/guessers.js";
import { type FirstReadListener, Guessing } from "./guess/guessing.js";
import { LinkEstimate } from "./link-estimate.js";
import { ProfilePrefetch } from "./prefetch.js";
import { clearStaleMount, detach } from "./stale-mount.js";
import { OverlayLayerView } from "./store-layer.js";

/** The annotation the reference reads `diff-size` from. */
const UNCOMPRESSED_SIZE = "io.containers.estargz.uncompressed-size";
/** containers/storage's compression type for gzip (archive.Gzip), as the reference writes it. */
const GZIP = 2;
/** How long a resolved manifest and config are reused (the reference: 120 s). */
const MANIFEST_TTL = 120_000;
/** Inode numbers: layer N's files get N * LAYER_INODES + their own number. */
const LAYER_INODES = 1 << 22;
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
   * A resolved layer is freed (reader, TOC index, chunk pool) once no `use` counts it, none
   * of its files is open and no request reached it for this long (default 120 s); a later
   * access resolves it again.
   */
  releaseAfterMs?: number;
}

export interface MountedStore {
  readonly dir: string;
  /** Detaches the mount. Idempotent. */
  unmount(): Promise<void>;
}

/** An image as the store knows it: its manifest and config, fetched on first access. */
interface ImageEntry {
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
interface LayerEntry {
  key: string;
  id: number;
  desc: Descriptor;
  source: RegistryBlobSource;
  reader: LayerReader;
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

/** The layer's JSON description, as the reference store encodes it (Go encoding/json). */
export function layerInfo(layers: Descriptor[], diffIds: string[], digest: string): string {
  if (layers.length !== diffIds.length) {
    throw new Error(
      `len(manifest.Layers) != len(config.Rootfs): ${layers.length} != ${diffIds.length}`,
    );
  }
  const i = layers.findIndex((l) => l.digest === digest);
  if (i < 0) throw new Error(`layer ${JSON.stringify(digest)} not found in the manifest`);
  const l = layers[i];
  const size = Number.parseInt(l.annotations?.[UNCOMPRESSED_SIZE] ?? "", 10);
  // Go's omitempty drops zero values: the same fields, in the same order.
  const info: Record<string, string | number> = {};
  if (l.digest) info["compressed-diff-digest"] = l.digest;
  if (l.size) info["compressed-size"] = l.size;
  if (diffIds[i]) info["diff-digest"] = diffIds[i];
  if (Number.isSafeInteger(size) && size !== 0) info["diff-size"] = size;
  info.compression = GZIP;
  return `${JSON.stringify(info)}\n`;
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

function describe(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(/\s*\n\s*/g, " ");
}

function decodeRef(name: string): Reference | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(name)) return undefined;
  const text = Buffer.from(name, "base64").toString("utf8");
  if (Buffer.from(text, "utf8").toString("base64") !== name) return undefined;
  try {
    return parseReference(text);
  } catch {
    return undefined;
  }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** An image's manifest digest, layer descriptors and diff IDs. */
interface Loaded {
  digest: string;
  layers: Descriptor[];
  diffIds: string[];
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
  private readonly reported = new Map<string, number>();
  readonly releaseAfterMs: number;

  constructor(private readonly opts: StoreOptions) {
    this.releaseAfterMs = opts.releaseAfterMs ?? RELEASE_AFTER;
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
    const at = Date.now();
    if ((this.reported.get(line) ?? 0) > at - 5000) return;
    this.reported.set(line, at);
    this.opts.log(line);
  }

  image(name: string): ImageEntry | undefined {
    let e = this.images.get(name);
    if (e) return e;
    const ref = decodeRef(name);
    if (!ref) return undefined;
    e = { ref, at: 0, uses: 0, lastUsed: Date.now() };
    this.images.set(name, e);
    return e;
  }

  /** The image's manifest digest, layer descriptors and diff IDs (cached MANIFEST_TTL while not in use). */
  load(img: ImageEntry): Promise<Loaded> {
    img.lastUsed = Date.now();
    if (img.loaded && (img.uses > 0 || Date.now() - img.at < MANIFEST_TTL)) return img.loaded;
    img.at = Date.now();
    const client = this.opts.client;
    const loaded = (async () => {
      const { manifest } = await getImageManifest(client, img.ref);
      const config = manifest.json.config;
      if (!config) throw new Error(`${formatReference(img.ref)}: the manifest has no config`);
      const repo = { registry: img.ref.registry, repository: img.ref.repository };
      const bytes = await fetchBlob(client, repo, config.digest, { size: config.size });
      const json = JSON.parse(Buffer.from(bytes).toString("utf8")) as {
        rootfs?: { diff_ids?: string[] };
      };
      return {
        digest: manifest.digest,
        layers: manifest.json.layers ?? [],
        diffIds: json.rootfs?.diff_ids ?? [],
      };
    })();
    img.loaded = loaded;
    loaded.catch(() => {
      if (img.loaded === loaded) img.loaded = undefined; // a failure is not kept
    });
    return loaded;
  }

  async info(img: ImageEntry, digest: string): Promise<Buffer> {
    const { layers, diffIds } = await this.load(img);
    return Buffer.from(layerInfo(layers, diffIds, digest));
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
    if (!desc) throw new Error(`unknown digest ${digest} for ref ${formatReference(img.ref)}`);
    let created = false;
    const p = this.resolve(img.ref, desc, () => {
      created = true;
    });
    for (const d of loaded.layers) {
      if (d !== desc && d.annotations?.[TOC_DIGEST_ANNOTATION]) {
        this.resolve(img.ref, d, () => {
          created = true;
        }).catch(() => {}); // reported when asked for
      }
    }
    if (this.opts.profile && (created || img.prefetched !== loaded.digest)) {
      img.prefetched = loaded.digest;
      void this.prefetchImage(img, loaded);
    }
    const guessing = this.opts.loaderPrefetch !== false || this.opts.importPrefetch !== false;
    if (guessing && img.loader?.digest !== loaded.digest) {
      void this.startLoader(img, loaded);
    }
    const entry = await p;
    entry.images.add(img);
    entry.lastUsed = Date.now();
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
    const descs = loaded.layers.filter((d) => d.annotations?.[TOC_DIGEST_ANNOTATION]);
    const settled = await Promise.allSettled(descs.map((d) => this.resolve(img.ref, d)));
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

  private resolve(ref: Reference, desc: Descriptor, onCreate?: () => void): Promise<LayerEntry> {
    const toc = desc.annotations?.[TOC_DIGEST_ANNOTATION];
    // As the reference: a layer without a TOC digest is not served (podman pulls it itself).
    if (!toc) {
      return Promise.reject(
        new Error(`layer ${desc.digest}: not eStargz (no TOC digest annotation)`),
      );
    }
    const key = `${desc.digest}/${toc}`;
    let p = this.layers.get(key);
    if (!p) {
      onCreate?.();
      p = this.open(ref, desc, toc, key);
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
    toc: string,
    key: string,
  ): Promise<LayerEntry> {
    const repo = { registry: ref.registry, repository: ref.repository };
    const source = await RegistryBlobSource.open(this.opts.client, repo, desc.digest, {
      size: desc.size,
    });
    const reader = await LayerReader.open(source, {
      tocDigest: toc,
      cache: this.opts.cache,
      tailSize: tailSizeFor(source.size),
    });
    let id = this.layerIds.get(key);
    if (id === undefined) {
      id = this.nextLayer++;
      this.layerIds.set(key, id);
    }
    const view = new OverlayLayerView(reader);
    const opened: OpenedLayer = { digest: desc.digest, descriptor: desc, view, reader };
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
      ops,
      rootIno: base + 1,
      lastUsed: Date.now(),
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
    const descs = loaded.layers.filter((d) => d.annotations?.[TOC_DIGEST_ANNOTATION]);
    const settled = await Promise.allSettled(descs.map((d) => this.resolve(img.ref, d)));
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
            reader: e.reader,
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
    if (img.uses === 0) img.at = Date.now();
    const n = (this.uses.get(digest) ?? 0) - 1;
    if (n > 0) this.uses.set(digest, n);
    else this.uses.delete(digest);
  }

  /** A file of the layer opened (not freed while open) or closed. */
  opened(l: LayerEntry, delta: 1 | -1): void {
    l.open += delta;
    l.lastUsed = Date.now();
  }

  /**
   * Frees every resolved layer that no `use` counts, with no file open and no request for
   * `releaseAfterMs`; forgets images not asked about for as long (and MANIFEST_TTL).
   */
  sweep(now = Date.now()): void {
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

const dirStat = (ino: number, mode = 0o500): Stat => {
  const now = new Date(0);
  return {
    mode: 0o040000 | mode,
    uid: 0,
    gid: 0,
    size: 0,
    nlink: 2,
    ino,
    rdev: 0,
    blksize: 4096,
    blocks: 0,
    atime: now,
    mtime: now,
    ctime: now,
  } as unknown as Stat;
};

const fileStat = (ino: number, size: number): Stat => {
  const now = new Date(0);
  return {
    mode: 0o100400,
    uid: 0,
    gid: 0,
    size,
    nlink: 1,
    ino,
    rdev: 0,
    blksize: 4096,
    blocks: Math.ceil(size / 512),
    atime: now,
    mtime: now,
    ctime: now,
  } as unknown as Stat;
};

interface Parsed {
  /** 0: root, 1: image dir, 2: layer dir, 3: a layer's entry (info, blob, diff...). */
  depth: number;
  img?: ImageEntry;
  digest?: string;
  entry?: string;
  /** Below diff/: the path inside the layer ("/" for diff itself). */
  inner?: string;
}

/** The FUSE operations of the store. */
export function storeOperations(store: LayerStore): Operations {
  const handles = new Map<number, { kind: "blob" | "info"; data?: Buffer; layer?: LayerEntry }>();
  /** Files open under diff/: the store's fd -> the layer's operations and their own fd. */
  const layerFds = new Map<
    number,
    { ops: Operations; fd: number; inner: string; layer: LayerEntry }
  >();
  let nextFd = 1;

  /** Splits a path; an errno when it names nothing the store can have. */
  const parse = (path: string): Parsed | number => {
    const parts = path.split("/").filter((p) => p !== "");
    if (parts.length === 0) return { depth: 0 };
    const img = store.image(parts[0]);
    if (!img) return Errno.EINVAL;
    if (parts.length === 1) return { depth: 1, img };
    if (!DIGEST.test(parts[1])) return Errno.EINVAL;
    if (parts.length === 2) return { depth: 2, img, digest: parts[1] };
    const entry = parts[2];
    if (entry === "diff") {
      return { depth: 3, img, digest: parts[1], entry, inner: `/${parts.slice(3).join("/")}` };
    }
    if (parts.length > 3) return Errno.ENOTDIR;
    if (entry !== "info" && entry !== "blob") return Errno.ENOENT;
    return { depth: 3, img, digest: parts[1], entry };
  };

  /** Runs `fn` with the layer of a parsed diff/blob path; EIO (one line) when unresolvable. */
  const withLayer = (p: Parsed, cb: (code: number) => void, fn: (l: LayerEntry) => void) => {
    store.layer(p.img as ImageEntry, p.digest as string).then(fn, (e) => {
      store.report(
        `layer ${formatReference((p.img as ImageEntry).ref)} ${p.digest}: ${describe(e)}`,
      );
      cb(Errno.EIO);
    });
  };

  return {
    ...refuseWrites,
    getattr(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.depth < 3) return cb(0, dirStat(p.depth === 0 ? 1 : store.ino(path)));
      if (p.entry === "info") {
        store.info(p.img as ImageEntry, p.digest as string).then(
          (data) => cb(0, fileStat(store.ino(path), data.length)),
          (e) => {
            store.report(`info of ${p.digest}: ${describe(e)}`);
            cb(Errno.EIO);
          },
        );
        return;
      }
      withLayer(p, cb, (l) => {
        if (p.entry === "blob") return cb(0, fileStat(store.ino(path), l.source.size));
        (l.ops.getattr as NonNullable<Operations["getattr"]>)(p.inner as string, cb);
      });
    },
    fgetattr(path, fd, cb) {
      const f = layerFds.get(fd);
      if (f?.ops.fgetattr) return f.ops.fgetattr(f.inner, f.fd, cb);
      (this.getattr as NonNullable<Operations["getattr"]>)(path, cb);
    },
    readdir(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.depth === 0) return cb(0, [".", ".."]);
      if (p.depth === 1) return cb(0, [".", ".."]);
      if (p.depth === 2) return cb(0, [".", "..", "diff", "info", "blob"]);
      if (p.entry !== "diff") return cb(Errno.ENOTDIR);
      withLayer(p, cb, (l) =>
        (l.ops.readdir as NonNullable<Operations["readdir"]>)(p.inner as string, cb),
      );
    },
    readlink(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.entry !== "diff") return cb(Errno.EINVAL);
      withLayer(p, cb, (l) =>
        (l.ops.readlink as NonNullable<Operations["readlink"]>)(p.inner as string, cb),
      );
    },
    open(path, flags, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.depth < 3) return cb(Errno.EISDIR);
      if ((flags & 3) !== 0) return cb(Errno.EROFS);
      if (p.entry === "info") {
        store.info(p.img as ImageEntry, p.digest as string).then(
          (data) => {
            const fd = nextFd++;
            handles.set(fd, { kind: "info", data });
            cb(0, fd);
          },
          () => cb(Errno.EIO),
        );
        return;
      }
      withLayer(p, cb, (l) => {
        if (p.entry === "blob") {
          const fd = nextFd++;
          handles.set(fd, { kind: "blob", layer: l });
          store.opened(l, 1);
          return cb(0, fd);
        }
        const inner = p.inner as string;
        (l.ops.open as NonNullable<Operations["open"]>)(inner, flags, (code, innerFd) => {
          if (code !== 0 || innerFd === undefined) return cb(code);
          const fd = nextFd++;
          layerFds.set(fd, { ops: l.ops, fd: innerFd, inner, layer: l });
          store.opened(l, 1);
          cb(0, fd);
        });
      });
    },
    release(_path, fd, cb) {
      const h = handles.get(fd);
      if (h) {
        handles.delete(fd);
        if (h.layer) store.opened(h.layer, -1);
        return cb(0);
      }
      const f = layerFds.get(fd);
      layerFds.delete(fd);
      if (f) store.opened(f.layer, -1);
      if (f?.ops.release) return f.ops.release(f.inner, f.fd, cb);
      cb(0);
    },
    read(_path, fd, buf, len, pos, cb) {
      const h = handles.get(fd);
      if (h?.kind === "info") {
        const data = h.data as Buffer;
        const n = Math.max(0, Math.min(len, data.length - pos));
        if (n > 0) data.copy(buf, 0, pos, pos + n);
        return cb(n);
      }
      if (h?.kind === "blob") {
        const l = h.layer as LayerEntry;
        const n = Math.max(0, Math.min(len, l.source.size - pos));
        if (n === 0) return cb(0);
        l.source.read([{ offset: pos, length: n }]).then(
          ([data]) => {
            buf.set(data.subarray(0, n), 0);
            cb(Math.min(n, data.length));
          },
          (e) => {
            store.report(`read of ${l.desc.digest}/blob failed: ${describe(e)}`);
            cb(Errno.EIO);
          },
        );
        return;
      }
      const f = layerFds.get(fd);
      if (!f?.ops.read) return cb(Errno.EBADF);
      f.ops.read(f.inner, f.fd, buf, len, pos, cb);
    },
    getxattr(path, name, position, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.entry !== "diff") return cb(Errno.ENODATA);
      withLayer(p, cb, (l) =>
        (l.ops.getxattr as NonNullable<Operations["getxattr"]>)(
          p.inner as string,
          name,
          position,
          cb,
        ),
      );
    },
    listxattr(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.entry !== "diff") return cb(0, []);
      withLayer(p, cb, (l) =>
        (l.ops.listxattr as NonNullable<Operations["listxattr"]>)(p.inner as string, cb),
      );
    },
    statfs: (_path, cb) => cb(0, statfsReply(false)),
    // containers/storage creates `use` while it uses a layer and removes the layer directory
    // when done; both are answered ENOENT after counting, as the reference does.
    create(path, _mode, cb) {
      const parts = path.split("/").filter((x) => x !== "");
      if (parts.length === 3 && parts[2] === "use") {
        const p = parse(parts.slice(0, 2).join("/"));
        if (typeof p === "number") return cb(p);
        store.use(p.img as ImageEntry, p.digest as string);
        return cb(Errno.ENOENT);
      }
      cb(Errno.EROFS);
    },
    rmdir(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.depth === 2) {
        store.release(p.img as ImageEntry, p.digest as string);
        return cb(Errno.ENOENT);
      }
      cb(Errno.EROFS);
    },
  };
}

/** Mounts the store at DIR (a stale mount there is cleared first); resolves once served. */
export async function mountStore(dirArg: string, opts: StoreOptions): Promise<MountedStore> {
  const dir = resolve(dirArg);
  if (await clearStaleMount(dir)) opts.log(`${dir}: cleared a stale mount left by a dead process`);
  const st = await stat(dir);
  if (!st.isDirectory()) throw new Error(`${dir}: not a directory`);
  const store = new LayerStore(opts);
  // use_ino, negative_timeout: layers never change, so a name that is not there stays so
  // (overlayfs asks every lower layer for each name a program probes). Not `ro`: podman
  // creates `use` and removes layer directories.
  const fuse = new LayerFuse(dir, storeOperations(store), layerFuseOptions("seekable-store"), [
    "use_ino",
    "negative_timeout=3600",
  ]);
  await new Promise<void>((res, rej) => fuse.mount((err) => (err ? rej(err) : res())));
  // Idle layers are looked for a few times per release period (at least every 30 s).
  const sweeper = setInterval(
    () => store.sweep(),
    Math.max(100, Math.min(30_000, store.releaseAfterMs / 4)),
  );
  sweeper.unref();
  let unmounting: Promise<void> | undefined;
  return {
    dir,
    unmount() {
      unmounting ??= (async () => {
        clearInterval(sweeper);
        store.close();
        await new Promise<void>((res) =>
          fuse.unmount((err) => {
            if (err) opts.log(`${dir}: unmount: ${describe(err)}`);
            res();
          }),
        );
        await clearStaleMount(dir).catch(() => detach(dir));
      })();
      return unmounting;
    },
  };
}
