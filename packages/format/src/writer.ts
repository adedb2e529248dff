import { createHash, type Hash } from "node:crypto";
import { availableParallelism } from "node:os";
import { CompressPool } from "./compress-pool.js";
import { type Compressor, gzipCompression } from "./compression.js";
import { FormatError } from "./errors.js";
import { type ByteString, fromByteString, toByteString } from "./go-json.js";
import { LANDMARK_CONTENTS, TOC_TAR_NAME } from "./landmark.js";
import {
  BLOCK,
  cleanEntryName,
  emptyHeader,
  encodeHeader,
  padding,
  quoteName,
  type TarHeader,
} from "./tar-header.js";
import { serializeToc, sha256Digest, type TocEntry } from "./toc.js";

export const DEFAULT_CHUNK_SIZE = 4 << 20;
export const DEFAULT_LEVEL = 6;

export interface WriterOptions {
  /** Payload bytes per chunk (and gzip member); default 4 MiB like the reference. */
  chunkSize?: number;
  /** gzip level 1-9. */
  level?: number;
  /** Compression threads; the output does not depend on it. */
  threads?: number;
  /** How members, TOC and footer are compressed (default gzip, the only one so far). */
  compressor?: Compressor;
}

/** Where compressed bytes go, in order. */
export interface ByteSink {
  write(data: Uint8Array): Promise<void>;
}

export interface WriteResult {
  /** sha256 of the blob. */
  digest: string;
  size: number;
  /** sha256 of the decompressed blob (the layer's DiffID). */
  diffID: string;
  tocDigest: string;
  uncompressedSize: number;
  entries: number;
  chunks: number;
  toc: TocEntry[];
}

const EMPTY_DIGEST = sha256Digest(new Uint8Array(0));
/** TOC entry type of each tar typeflag the format carries. */
export const TOC_TYPE_OF_TAR: Record<string, Exclude<TocEntry["type"], "chunk">> = {
  "0": "reg",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

interface PendingSegment {
  pieces: Uint8Array[];
  length: number;
  chunkLength: number;
  /** Entry whose offset is this member's start and whose chunkDigest is its leading chunk. */
  start?: TocEntry;
  /** Regular file made of this single chunk: its digest equals the chunk digest. */
  wholeFile?: TocEntry;
}

const BATCH_BYTES = 1 << 20;
const BATCH_SEGMENTS = 256;

/**
 * Writes eStargz: each non-empty regular file's payload chunk starts a new gzip member;
 * headers, padding and non-file entries ride in the member before. Members are compressed
 * by worker threads in batches; results are written in order, so offsets are known when
 * the TOC is serialized at the end.
 */
export class LayerWriter {
  private readonly chunkSize: number;
  private readonly level: number;
  private readonly pool: CompressPool;
  private readonly compressor: Compressor;
  private readonly toc: TocEntry[] = [];
  private readonly lastUname = new Map<number, string>();
  private readonly lastGname = new Map<number, string>();
  private readonly diffHash = createHash("sha256");
  private readonly blobHash = createHash("sha256");
  private uncompressed = 0;
  private written = 0;
  private chunks = 0;
  private seg: PendingSegment = { pieces: [], length: 0, chunkLength: 0 };
  private batch: PendingSegment[] = [];
  private batchBytes = 0;
  private readonly batches = new Map<number, PendingSegment[]>();
  private batchSeq = 0;
  private finished = false;
  private aborted = false;

  constructor(
    private readonly sink: ByteSink,
    opts: WriterOptions = {},
  ) {
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.level = opts.level ?? DEFAULT_LEVEL;
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize < 1)
      throw new FormatError("chunk size must be a positive integer");
    if (!Number.isInteger(this.level) || this.level < 1 || this.level > 9)
      throw new FormatError("compression level must be 1-9");
    const threads = Math.max(1, opts.threads ?? availableParallelism());
    this.compressor = opts.compressor ?? gzipCompression;
    this.pool = new CompressPool(
      threads,
      this.level,
      (seq, res) => this.deliver(seq, res),
      undefined,
      this.compressor.name,
    );
  }

  /** Appends one entry; `body` must yield exactly `header.size` bytes for regular files. */
  async add(header: TarHeader, body?: AsyncIterable<Uint8Array>): Promise<void> {
    const ent = tocEntryOf(header, this.lastUname, this.lastGname);
    const type = ent.type;
    this.append(encodeHeader(header));
    if (type !== "reg") {
      this.toc.push(ent);
      return;
    }
    ent.size = header.size;
    if (header.size === 0) {
      ent.digest = EMPTY_DIGEST;
      this.toc.push(ent);
      return;
    }
    await this.addPayload(ent, header, body);
  }

  private async addPayload(
    first: TocEntry,
    header: TarHeader,
    body?: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const total = header.size;
    const multi = total > this.chunkSize;
    const fileHash: Hash | undefined = multi ? createHash("sha256") : undefined;
    const it = body?.[Symbol.asyncIterator]();
    let pending: Uint8Array | undefined;
    let written = 0;
    let ent = first;
    while (written < total) {
      await this.closeSegment();
      const remain = total - written;
      const len = Math.min(this.chunkSize, remain);
      if (remain >= this.chunkSize) ent.chunkSize = this.chunkSize; // the reference's quirk
      ent.chunkOffset = written;
      this.seg.start = ent;
      this.seg.chunkLength = len;
      if (!multi) this.seg.wholeFile = first;
      this.toc.push(ent);
      this.chunks++;
      let need = len;
      while (need > 0) {
        if (!pending || pending.length === 0) {
          const r = it ? await it.next() : { done: true as const, value: undefined };
          if (r.done)
            throw new FormatError(`tar entry ${JSON.stringify(header.name)} is truncated`);
          pending = r.value;
          continue;
        }
        const piece = pending.length <= need ? pending : pending.subarray(0, need);
        pending = pending.subarray(piece.length);
        fileHash?.update(piece);
        this.append(piece);
        need -= piece.length;
      }
      written += len;
      ent = { name: header.name, type: "chunk" };
    }
    if (fileHash) first.digest = `sha256:${fileHash.digest("hex")}`;
    const pad = padding(total);
    if (pad > 0) this.append(new Uint8Array(pad));
  }

  /** Adds a landmark file (1 byte 0x0f, mode 0, no modtime) as the reference does. */
  async addLandmark(name: string): Promise<void> {
    const h = emptyHeader(toByteString(name), "0");
    h.size = LANDMARK_CONTENTS.length;
    await this.add(
      h,
      (async function* () {
        yield LANDMARK_CONTENTS;
      })(),
    );
  }

  /** Flushes everything, appends the TOC member and the footer. */
  async finish(): Promise<WriteResult> {
    if (this.finished) throw new Error("finish called twice");
    this.finished = true;
    refuseBadHardlinks(this.toc);
    try {
      await this.closeSegment();
      await this.flushBatch();
      await this.pool.drain();
    } finally {
      await this.pool.close();
    }
    const tocJson = serializeToc({ version: 1, entries: this.toc });
    const tocDigest = sha256Digest(tocJson);
    const h = emptyHeader(toByteString(TOC_TAR_NAME), "0");
    h.size = tocJson.length;
    const tocTar = Buffer.concat([
      encodeHeader(h),
      tocJson,
      Buffer.alloc(padding(tocJson.length) + 2 * BLOCK),
    ]);
    this.diffHash.update(tocTar);
    this.uncompressed += tocTar.length;
    const tocOffset = this.written;
    await this.emit(this.compressor.tocMember(tocTar, this.level));
    await this.emit(this.compressor.footer(tocOffset));
    return {
      digest: `sha256:${this.blobHash.digest("hex")}`,
      size: this.written,
      diffID: `sha256:${this.diffHash.digest("hex")}`,
      tocDigest,
      uncompressedSize: this.uncompressed,
      entries: this.toc.filter((e) => e.type !== "chunk").length,
      chunks: this.chunks,
      toc: this.toc,
    };
  }

  /**
   * Stops the workers after a failure and waits for any write still in flight, so the
   * caller may reset or discard the sink without a late write landing in it.
   */
  async abort(): Promise<void> {
    this.finished = true;
    this.aborted = true;
    await this.pool.close();
  }

  private append(bytes: Uint8Array): void {
    this.diffHash.update(bytes);
    this.uncompressed += bytes.length;
    this.seg.pieces.push(bytes);
    this.seg.length += bytes.length;
  }

  private async closeSegment(): Promise<void> {
    const s = this.seg;
    if (s.length === 0) return;
    this.seg = { pieces: [], length: 0, chunkLength: 0 };
    this.batch.push(s);
    this.batchBytes += s.length;
    if (this.batchBytes >= BATCH_BYTES || this.batch.length >= BATCH_SEGMENTS)
      await this.flushBatch();
  }

  private async flushBatch(): Promise<void> {
    if (this.batch.length === 0) return;
    const segs = this.batch;
    this.batch = [];
    // Own ArrayBuffer (never Buffer's shared pool): it is transferred to the worker.
    const buf = new Uint8Array(this.batchBytes);
    this.batchBytes = 0;
    let p = 0;
    for (const s of segs) {
      for (const piece of s.pieces) {
        buf.set(piece, p);
        p += piece.length;
      }
      s.pieces = [];
    }
    this.batches.set(this.batchSeq++, segs);
    await this.pool.submit(
      buf,
      segs.map((s) => s.length),
      segs.map((s) => s.chunkLength),
    );
  }

  private async deliver(
    seq: number,
    res: { buffer: ArrayBuffer; lengths: number[]; chunkDigests: string[] },
  ): Promise<void> {
    const segs = this.batches.get(seq);
    if (!segs) throw new Error(`unknown batch ${seq}`);
    this.batches.delete(seq);
    const data = new Uint8Array(res.buffer);
    let offset = this.written; // each member starts where the previous one ends
    segs.forEach((s, i) => {
      if (s.start) {
        s.start.offset = offset;
        s.start.chunkDigest = `sha256:${res.chunkDigests[i]}`;
        if (s.wholeFile) s.wholeFile.digest = s.start.chunkDigest;
      }
      offset += res.lengths[i];
    });
    await this.emit(data);
  }

  private async emit(data: Uint8Array): Promise<void> {
    if (this.aborted) throw new Error("write after abort");
    this.blobHash.update(data);
    this.written += data.length;
    await this.sink.write(data);
  }
}

/**
 * A hardlink must name another entry of the archive that is not a directory: one to a
 * directory makes the layer a graph with cycles (a mount shows an endless tree, and no file
 * system can extract it), one to a name the archive lacks (`../../etc/passwd`) is refused by
 * every reader of the TOC, ours and the reference. Refused here, naming the entry.
 */
function refuseBadHardlinks(toc: TocEntry[]): void {
  // The writer's TOC holds the tar's byte strings; text only in the message.
  const text = (s: string) => quoteName(fromByteString(s as ByteString));
  const dirs = new Set<string>();
  const names = new Set<string>();
  for (const e of toc) {
    const name = cleanEntryName(e.name);
    if (e.type === "dir") dirs.add(name);
    else names.add(name);
  }
  for (const e of toc) {
    if (e.type !== "hardlink") continue;
    const target = cleanEntryName(e.linkName ?? "");
    if (dirs.has(target))
      throw new FormatError(
        `hardlink ${text(e.name)} points to the directory ${text(e.linkName ?? "")}: hardlinks to directories are not allowed`,
      );
    if (!names.has(target) || target === cleanEntryName(e.name))
      throw new FormatError(
        `hardlink ${text(e.name)} points to ${text(e.linkName ?? "")}, which is not in the archive`,
      );
  }
}

/** The reference emits a user/group name only when it changed for that id. */
/**
 * A tar header's metadata as a TOC entry (no size, offsets or digests). User and group
 * names are given only when they differ from the last seen for that id (the reference's
 * way); `lastUname`/`lastGname` carry that state from entry to entry.
 */
export function tocEntryOf(
  header: TarHeader,
  lastUname: Map<number, string>,
  lastGname: Map<number, string>,
): TocEntry {
  const type = TOC_TYPE_OF_TAR[header.type];
  if (!type) throw new FormatError(`unsupported tar entry type ${header.type}`);
  const ent: TocEntry = { name: header.name, type };
  const mt = formatModtime(header.mtimeSec, header.mtimeNsec);
  if (mt) ent.modtime = mt;
  if (type === "hardlink" || type === "symlink") ent.linkName = header.linkname;
  ent.mode = header.mode;
  ent.uid = header.uid;
  ent.gid = header.gid;
  ent.userName = nameIfChanged(lastUname, header.uid, header.uname);
  ent.groupName = nameIfChanged(lastGname, header.gid, header.gname);
  if (type === "char" || type === "block") {
    ent.devMajor = header.devmajor;
    ent.devMinor = header.devminor;
  }
  if (header.xattrs.size > 0) {
    ent.xattrs = {};
    for (const [k, v] of header.xattrs) ent.xattrs[k] = Buffer.from(v, "latin1").toString("base64");
  }
  return ent;
}

function nameIfChanged(last: Map<number, string>, id: number, name: string): string | undefined {
  if (name === "") return undefined;
  if (last.get(id) === name) return undefined;
  last.set(id, name);
  return name;
}

/** Go: "" when zero or Unix()==0, else UTC rounded to the second in RFC 3339. */
export function formatModtime(sec: number, nsec: number): string | undefined {
  if (sec === 0) return undefined;
  const d = new Date((nsec >= 5e8 ? sec + 1 : sec) * 1000);
  // Go prints the year with at least 4 digits and no sign for years past 9999.
  const year = d.getUTCFullYear();
  const y = year < 0 ? `-${String(-year).padStart(4, "0")}` : String(year).padStart(4, "0");
  const two = (n: number) => String(n).padStart(2, "0");
  return `${y}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}Z`;
}
