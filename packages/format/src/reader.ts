import { createHash } from "node:crypto";
import { createGunzip, gunzipSync } from "node:zlib";
import { type ChunkRef, TruncatedMemberError, verifyChunk } from "./chunk.js";
import { type Decompressor, gzipCompression } from "./compression.js";
import {
  FormatError,
  LimitError,
  NotEStargzError,
  NotFoundError,
  VerificationError,
} from "./errors.js";
import type { Footer } from "./footer.js";
import { TOC_TAR_NAME } from "./landmark.js";
import type { RangeSource } from "./range-source.js";
import { cleanEntryName } from "./tar-header.js";
import { parseToc, sha256Digest, type Toc, type TocEntry } from "./toc.js";
import { DEFAULT_MAX_TOC_ENTRIES, type NodeView, TocIndex } from "./toc-index.js";

/**
 * Verified chunk contents by chunkDigest. Implementations that keep bytes outside the
 * process (disk) must check them against the digest on `get`.
 */
export interface ChunkCache {
  get(digest: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
  put(digest: string, data: Uint8Array): Promise<void> | void;
}

export interface OpenOptions {
  /** Where verified chunks are kept and looked up. */
  cache?: ChunkCache;
  /** Expected TOC digest (sha256:...), e.g. from the layer annotation. */
  tocDigest?: string;
  /** Bytes read from the end of the blob at open; the TOC is usually inside. */
  tailSize?: number;
  /** The blob's last bytes, already read (e.g. by a suffix range that also told the size). */
  tail?: Uint8Array;
  /** Most TOC entries accepted (default 2,000,000): bounds the memory an open can take. */
  maxEntries?: number;
  /** Most TOC JSON bytes accepted (default 512 MiB). */
  maxTocBytes?: number;
  /** Reads the footer and inflates chunks (default gzip, the only one so far). */
  decompressor?: Decompressor;
  signal?: AbortSignal;
}

/** A file system node built from the TOC (the reference's initFields). */
export interface Node {
  /** Cleaned path, "" for the root. */
  path: string;
  type: Exclude<TocEntry["type"], "chunk">;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  userName: string;
  groupName: string;
  modtime: string;
  linkName: string;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, string>;
  digest: string;
  numLink: number;
  chunks: ChunkRef[];
  children?: Map<string, Node>;
  /** For hardlinks: the node holding the content. */
  target?: Node;
  /** The TOC entry (absent for implicit directories). */
  entry?: TocEntry;
}

const DEFAULT_TAIL = 64 * 1024;
const MAX_TOC_BYTES = 512 << 20;

export { DEFAULT_MAX_TOC_ENTRIES };

/** A layer's chunks with digests in blob order: offsets as arrays, a chunk's node and ref on demand. */
export interface LayerChunks {
  count: number;
  offset: ArrayLike<number>;
  nextOffset: ArrayLike<number>;
  chunk(i: number): { node: Node; ref: ChunkRef };
}

/**
 * The regular file `path` names in a layer (a hardlink's target), or one line saying why not:
 * what every layer kind (eStargz, whole, indexed) answers a read of a path with.
 */
export function regularNode(path: string, n: Node | undefined): Node {
  if (!n) throw new NotFoundError(`${JSON.stringify(path)}: no such file in layer`);
  const r = n.target ?? n;
  if (r.type !== "reg")
    throw new FormatError(`${JSON.stringify(path)}: not a regular file (${r.type})`);
  return r;
}

/** Standard base64 with padding: what Go's encoding/json writes for a []byte. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Reads an eStargz (or legacy stargz) blob through a RangeSource, verifying every byte. */
export class LayerReader {
  readonly root: Node;
  private readonly nodes: NodeView;
  private readonly index: TocIndex;
  private parsedToc: Toc | undefined;

  /** Set at open; may be replaced. */
  cache: ChunkCache | undefined;
  /** How this blob's footer and chunks are decompressed; set at open. */
  decompressor: Decompressor = gzipCompression;

  private constructor(
    readonly source: RangeSource,
    readonly footer: Footer,
    readonly tocBytes: Uint8Array,
    readonly tocDigest: string,
    maxEntries: number,
  ) {
    const bytes = Buffer.from(tocBytes.buffer, tocBytes.byteOffset, tocBytes.byteLength);
    this.index = TocIndex.build(bytes, footer.tocOffset, maxEntries);
    this.nodes = this.index.nodes;
    this.root = this.index.root;
  }

  /** The TOC as objects, parsed on first use (opening indexes the JSON bytes directly). */
  get toc(): Toc {
    this.parsedToc ??= parseToc(this.tocBytes);
    return this.parsedToc;
  }

  /** Paths of the regular files before `.prefetch.landmark` (none when there is no landmark). */
  prioritizedPaths(): string[] {
    return this.index.prioritizedPaths();
  }

  /** Footer, then TOC: one read when the TOC fits in the tail, else a second for the rest. */
  static async open(source: RangeSource, opts: OpenOptions = {}): Promise<LayerReader> {
    const size = source.size;
    if (size < 47)
      throw new NotEStargzError(`blob of ${size} bytes is too small for an eStargz footer`);
    let tail: Uint8Array;
    const dec = opts.decompressor ?? gzipCompression;
    if (
      opts.tail &&
      opts.tail.length >= Math.min(size, dec.footerSize) &&
      opts.tail.length <= size
    ) {
      tail = opts.tail;
    } else {
      const tailLen = Math.min(size, Math.max(opts.tailSize ?? DEFAULT_TAIL, dec.footerSize));
      [tail] = await source.read([{ offset: size - tailLen, length: tailLen }], opts.signal);
    }
    const tailStart = size - tail.length;
    const footer = dec.parseFooter(tail);
    const tocEnd = size - footer.footerSize;
    if (footer.tocOffset >= tocEnd)
      throw new FormatError(`TOC offset ${footer.tocOffset} is outside the blob (${size} bytes)`);
    // The TOC member, in one or two pieces (read before the tail, and in it): inflated
    // without joining them first (a copy of the whole member, into pages never touched yet).
    let member: Uint8Array[];
    if (footer.tocOffset >= tailStart) {
      member = [tail.subarray(footer.tocOffset - tailStart, tocEnd - tailStart)];
    } else {
      if (tocEnd - footer.tocOffset > (opts.maxTocBytes ?? MAX_TOC_BYTES))
        throw new FormatError(`TOC of ${tocEnd - footer.tocOffset} bytes is too large`);
      const [head] = await source.read(
        [{ offset: footer.tocOffset, length: tailStart - footer.tocOffset }],
        opts.signal,
      );
      member = [head, tail.subarray(0, tocEnd - tailStart)];
    }
    const tocBytes = await extractTocJson(member, opts.maxTocBytes ?? MAX_TOC_BYTES);
    const tocDigest = sha256Digest(tocBytes);
    if (opts.tocDigest && opts.tocDigest !== tocDigest) {
      throw new VerificationError(
        `TOC digest ${tocDigest} does not match the expected ${opts.tocDigest}`,
      );
    }
    const reader = new LayerReader(
      source,
      footer,
      tocBytes,
      tocDigest,
      opts.maxEntries ?? DEFAULT_MAX_TOC_ENTRIES,
    );
    reader.cache = opts.cache;
    reader.decompressor = dec;
    return reader;
  }

  get legacy(): boolean {
    return this.footer.legacy;
  }

  /** The node at `path`, or undefined. Hardlinks are returned as such (see `resolve`). */
  lookup(path: string): Node | undefined {
    return this.nodes.get(cleanEntryName(path));
  }

  /** Follows a hardlink to the node holding the content. */
  resolve(node: Node): Node {
    return node.target ?? node;
  }

  readdir(path: string): Node[] {
    const n = this.lookup(path);
    if (!n) throw new NotFoundError(`${JSON.stringify(path)}: no such file or directory`);
    if (n.type !== "dir") throw new FormatError(`${JSON.stringify(path)}: not a directory`);
    return [...(n.children?.values() ?? [])];
  }

  /** Every node, parents before children, in TOC order. */
  *walk(): Generator<Node> {
    for (const n of this.nodes.values()) yield n;
  }

  /** Every node's cleaned path, as walk() gives them (the root's is ""), without making nodes. */
  paths(): Generator<string> {
    return this.nodes.paths();
  }

  /** Reads [offset, offset+length) of a regular file, touching only the chunks covering it. */
  async read(path: string, offset = 0, length?: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad offset ${offset}`);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new RangeError(`bad length ${length}`);
    }
    const node = this.regular(path);
    const end = Math.min(node.size, length === undefined ? node.size : offset + length);
    if (offset >= end) return new Uint8Array(0);
    const out = Buffer.allocUnsafe(end - offset);
    for await (const { data, fileOffset } of this.chunksOf(node, offset, end, signal)) {
      const from = Math.max(offset, fileOffset);
      const to = Math.min(end, fileOffset + data.length);
      out.set(data.subarray(from - fileOffset, to - fileOffset), from - offset);
    }
    return out;
  }

  /** Streams a whole file, verified chunk by chunk, with bounded memory. */
  async *stream(path: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const node = this.regular(path);
    for await (const { data } of this.chunksOf(node, 0, node.size, signal)) yield data;
  }

  /**
   * Checks every chunk digest and every file digest, and that every xattr value is base64
   * as Go encodes a []byte (the reference refuses anything else). Returns counts.
   */
  async verify(signal?: AbortSignal): Promise<{ files: number; chunks: number; bytes: number }> {
    let files = 0;
    let chunks = 0;
    let bytes = 0;
    for (const n of this.nodes.values()) {
      for (const [name, value] of Object.entries(n.xattrs)) {
        if (!BASE64.test(value))
          throw new FormatError(`${n.path}: xattr ${JSON.stringify(name)} is not valid base64`);
      }
      if (n.type !== "reg" || n.target) continue;
      files++;
      if (n.size === 0) {
        if (n.digest && n.digest !== sha256Digest(new Uint8Array(0)))
          throw new VerificationError(`${n.path}: empty file with a non-empty digest`);
        continue;
      }
      // Not from the cache: a member whose chunk digest was seen elsewhere is read too.
      for await (const { data } of this.chunksOf(n, 0, n.size, signal, false)) {
        chunks++;
        bytes += data.length;
      }
    }
    return { files, chunks, bytes };
  }

  private regular(path: string): Node {
    return regularNode(path, this.lookup(path));
  }

  /**
   * Verified contents of some chunks of a file: cached chunks come from the cache, the
   * rest are fetched in one source.read call (members shared by several chunks once).
   */
  readChunks(node: Node, refs: ChunkRef[], signal?: AbortSignal): Promise<Uint8Array[]> {
    return this.readChunkSet(
      refs.map((ref) => ({ path: node.path, ref })),
      signal,
    );
  }

  /**
   * Fetches the chunks of several files into the cache with as few source.read calls as
   * the byte budget allows, so a source can coalesce them and use multi-range requests.
   * Only chunks with a digest are prefetched (legacy files are verified whole on read).
   */
  async prefetch(paths: string[], signal?: AbortSignal, budget = 16 << 20): Promise<void> {
    if (!this.cache) return;
    const items: { path: string; ref: ChunkRef }[] = [];
    const seen = new Set<number>();
    for (const p of paths) {
      const n = this.lookup(p);
      if (!n) continue;
      const r = this.resolve(n);
      if (r.type !== "reg") continue;
      for (const ref of r.chunks) {
        if (!ref.chunkDigest || seen.has(ref.offset)) continue;
        seen.add(ref.offset);
        items.push({ path: r.path, ref });
      }
    }
    items.sort((a, b) => a.ref.offset - b.ref.offset);
    for (let i = 0; i < items.length; ) {
      let bytes = 0;
      let j = i;
      while (
        j < items.length &&
        (j === i || bytes + (items[j].ref.nextOffset - items[j].ref.offset) <= budget)
      ) {
        bytes += items[j].ref.nextOffset - items[j].ref.offset;
        j++;
      }
      await this.readChunkSet(items.slice(i, j), signal);
      i = j;
    }
  }

  /** `cached` false: every member is read from the source and checked (verify). */
  private async readChunkSet(
    items: { path: string; ref: ChunkRef }[],
    signal?: AbortSignal,
    cached = true,
  ): Promise<Uint8Array[]> {
    const cache = cached ? this.cache : undefined;
    const out: (Uint8Array | undefined)[] = await Promise.all(
      items.map(({ ref }) => (cache && ref.chunkDigest ? cache.get(ref.chunkDigest) : undefined)),
    );
    const members = new Map<number, ChunkRef>();
    items.forEach(({ ref }, k) => {
      if (!out[k] && !members.has(ref.offset)) members.set(ref.offset, ref);
    });
    if (members.size > 0) {
      const list = [...members.values()];
      const bufs = await this.source.read(
        list.map((c) => ({ offset: c.offset, length: c.nextOffset - c.offset })),
        signal,
      );
      const byOffset = new Map(list.map((c, k) => [c.offset, bufs[k]]));
      for (let k = 0; k < items.length; k++) {
        if (out[k]) continue;
        const { path, ref } = items[k];
        const data = await this.verifiedChunk(byOffset.get(ref.offset) as Uint8Array, ref, path);
        out[k] = data;
        if (cache && ref.chunkDigest) await cache.put(ref.chunkDigest, data);
      }
    }
    return out as Uint8Array[];
  }

  /**
   * A chunk's bytes from its member's compressed bytes, inflated (never past the TOC entry's
   * size; off the event loop when large) and checked against the chunk's digest: the one place
   * every reader of members (this reader, batched reads, the mount's pool and prefetches)
   * turns fetched bytes into bytes it may serve. A member cut short names the entry that cut it.
   */
  async verifiedChunk(member: Uint8Array, ref: ChunkRef, path: string): Promise<Uint8Array> {
    const data = await this.decompressor.inflateChunk(member, ref, path).catch((e: unknown) => {
      throw e instanceof TruncatedMemberError ? this.blameCut(ref, e) : e;
    });
    verifyChunk(data, ref, path);
    return data;
  }

  /**
   * Every chunk with a digest, in blob order, as parallel arrays (offsets, and the node and
   * chunk each is): what planners that walk the blob (neighbours) need, without making nodes.
   */
  chunkTable(): LayerChunks {
    const t = this.index.digestChunks();
    return {
      count: t.count,
      offset: t.offset,
      nextOffset: t.nextOffset,
      chunk: (i) => {
        const node = this.index.node(t.slot[i]);
        return { node, ref: node.chunks[t.nth[i]] };
      },
    };
  }

  /**
   * A member whose data ends early was cut by the next offset, which points into its middle:
   * the entry at that offset (or the footer's TOC offset) is the bad one.
   */
  private blameCut(ref: ChunkRef, e: Error): Error {
    if (ref.nextOffset === this.footer.tocOffset)
      return new FormatError(
        `TOC offset ${ref.nextOffset} points into the middle of the gzip member at ${ref.offset} (${e.message})`,
      );
    const cutter = this.toc.entries.find((x) => x.offset === ref.nextOffset && !x.innerOffset);
    if (!cutter) return e;
    const name = cleanEntryName(cutter.name);
    return new FormatError(
      `${name}: chunk offset ${ref.nextOffset} points into the middle of the gzip member at ${ref.offset}`,
    );
  }

  /**
   * Yields the verified chunks covering [start, end) in order, fetching a window of
   * chunks per source.read call. A legacy file without chunk digests is read whole and
   * checked against its file digest before anything is yielded.
   */
  private async *chunksOf(
    node: Node,
    start: number,
    end: number,
    signal?: AbortSignal,
    cached = true,
  ): AsyncGenerator<{ data: Uint8Array; fileOffset: number }> {
    const all = node.chunks;
    const needWhole = all.some((c) => !c.chunkDigest);
    const wanted = needWhole
      ? all
      : all.filter((c) => c.chunkOffset < end && c.chunkOffset + c.chunkSize > start);
    const fileHash =
      needWhole || (start === 0 && end === node.size) ? createHash("sha256") : undefined;
    const held: { data: Uint8Array; fileOffset: number }[] = [];
    const WINDOW = 8 << 20; // compressed bytes per read: few requests, bounded memory
    for (let i = 0; i < wanted.length; ) {
      let j = i;
      let bytes = 0;
      while (
        j < wanted.length &&
        (j === i || bytes + (wanted[j].nextOffset - wanted[j].offset) <= WINDOW)
      ) {
        bytes += wanted[j].nextOffset - wanted[j].offset;
        j++;
      }
      const group = wanted.slice(i, j);
      const datas = await this.readChunkSet(
        group.map((ref) => ({ path: node.path, ref })),
        signal,
        cached,
      );
      for (let k = 0; k < group.length; k++) {
        const data = datas[k];
        fileHash?.update(data);
        const item = { data, fileOffset: group[k].chunkOffset };
        if (needWhole) held.push(item);
        else yield item;
      }
      i = j;
    }
    if (fileHash && node.digest) {
      const got = `sha256:${fileHash.digest("hex")}`;
      if (got !== node.digest)
        throw new VerificationError(
          `${node.path}: content does not match its digest (got ${got}, TOC says ${node.digest})`,
        );
    } else if (needWhole && !node.digest) {
      throw new VerificationError(`${node.path}: no digest to verify the content against`);
    }
    for (const item of held) {
      if (item.fileOffset < end && item.fileOffset + item.data.length > start) yield item;
    }
  }
}

/** A node with Go's zero values (directories 0755), filled in by whoever builds a tree. */
export function newNode(path: string, type: Node["type"]): Node {
  return {
    path,
    type,
    size: 0,
    mode: 0,
    uid: 0,
    gid: 0,
    userName: "",
    groupName: "",
    modtime: "",
    linkName: "",
    devMajor: 0,
    devMinor: 0,
    xattrs: {},
    digest: "",
    numLink: 1,
    chunks: [],
    children: type === "dir" ? new Map() : undefined,
  };
}

/** The TOC member (in pieces): one gzip member holding a tar entry "stargz.index.json". */
async function extractTocJson(member: Uint8Array[], maxBytes: number): Promise<Uint8Array> {
  let tar: Buffer;
  try {
    // The tar header and padding come on top of the JSON. The output buffer is sized from
    // the gzip trailer's ISIZE (a hint only: bounded, and a wrong one just costs more chunks);
    // zlib's default 16 KiB chunks, concatenated at the end, double the inflate cost.
    const max = maxBytes + 2048;
    const last = member[member.length - 1];
    const total = member.reduce((n, m) => n + m.length, 0);
    const isize =
      total >= 18 && last.length >= 4
        ? Buffer.from(last.buffer, last.byteOffset, last.byteLength).readUInt32LE(last.length - 4)
        : 0;
    const chunkSize = Math.min(Math.max(isize + 1024, 64 * 1024), max + 1, 64 << 20);
    tar =
      member.length === 1
        ? gunzipSync(member[0], { maxOutputLength: max, chunkSize })
        : await gunzipPieces(member, max, chunkSize);
  } catch (e) {
    if (e instanceof LimitError) throw e;
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw new LimitError(`TOC JSON is larger than the limit of ${maxBytes} bytes`);
    throw new FormatError(`TOC is not valid gzip (${(e as Error).message})`);
  }
  if (tar.length < 512) throw new FormatError("TOC member holds no tar header");
  const name = tar.toString("latin1", 0, 100).replace(/\0.*$/s, "");
  if (name !== TOC_TAR_NAME)
    throw new FormatError(`TOC member starts with ${JSON.stringify(name)}, not ${TOC_TAR_NAME}`);
  const sizeField = tar.subarray(124, 136);
  let size: number;
  if (sizeField[0] & 0x80) size = Number(sizeField.readBigUInt64BE(4));
  else
    size = Number.parseInt(
      sizeField
        .toString("latin1")
        .replace(/[\0 ].*$/s, "")
        .trim() || "0",
      8,
    );
  if (!Number.isSafeInteger(size) || 512 + size > tar.length)
    throw new FormatError("TOC tar entry is truncated");
  return tar.subarray(512, 512 + size);
}

/**
 * gunzipSync of the pieces joined, without joining them: a gunzip stream fed each piece.
 * Its output comes as consecutive slices of one buffer of `chunkSize` bytes when the
 * output fits, and is then returned as a view of that buffer (else joined).
 */
function gunzipPieces(pieces: Uint8Array[], max: number, chunkSize: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const z = createGunzip({ chunkSize });
    const out: Buffer[] = [];
    let total = 0;
    z.on("data", (d: Buffer) => {
      total += d.length;
      if (total > max) {
        z.destroy();
        reject(new LimitError(`TOC JSON is larger than the limit of ${max - 2048} bytes`));
      } else out.push(d);
    });
    z.on("error", reject);
    z.on("end", () => {
      let view = out.length > 0;
      for (let k = 1; k < out.length && view; k++)
        view =
          out[k].buffer === out[0].buffer &&
          out[k].byteOffset === out[k - 1].byteOffset + out[k - 1].length;
      resolve(
        view ? Buffer.from(out[0].buffer, out[0].byteOffset, total) : Buffer.concat(out, total),
      );
    });
    for (const p of pieces) z.write(p);
    z.end();
  });
}
