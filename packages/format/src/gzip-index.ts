/**
 * The index of one gzip layer (issue 17): what lets a reader serve files of a plain tar.gz
 * lazily, with the layer left as it is. It holds the layer it describes (digest, size), the
 * layer's entries as a TOC has them (offsets are positions in the *uncompressed* tar; a
 * sha256 per chunk of file content) and the checkpoints where inflating can resume.
 *
 * Serialized form (gzip of): "SKGZIDX1", u32 length + header JSON (layer, sizes,
 * checkpoints as [in, bits, out], input-end marks as deltas), u32 length + TOC JSON (serializeToc), then each
 * checkpoint's window (min(out, 32 KiB) bytes) in order. parseGzipIndex trusts none of it.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { inflateFrom, type ResumePoint, resumeStart, WINDOW_SIZE } from "./deflate-resume.js";
import { FormatError } from "./errors.js";
import type { Checkpoint } from "./gzip-checkpoints.js";
import { serializeToc, type TocEntry } from "./toc.js";

export const GZIP_INDEX_MEDIA_TYPE = "application/vnd.seekable.gzip-index.v1+gzip";
const MAGIC = Buffer.from("SKGZIDX1", "latin1");
/** Default limits of a parse: an index far larger than its layer's metadata is refused. */
export const MAX_INDEX_BYTES = 256 << 20;
const MAX_HEADER_JSON = 64 << 20;

export interface GzipIndex {
  version: 1;
  layer: { digest: string; size: number };
  uncompressedSize: number;
  spanSize: number;
  chunkSize: number;
  checkpoints: Checkpoint[];
  /** [in, out] pairs: the first `out` uncompressed bytes need the first `in` compressed ones. */
  marks: [number, number][];
  /** TOC JSON bytes (version 1): entries with offsets in the uncompressed tar. */
  toc: Uint8Array;
}

/** The index's TOC JSON for `entries`. */
export function indexToc(entries: TocEntry[]): Uint8Array {
  return serializeToc({ version: 1, entries });
}

export function serializeGzipIndex(ix: GzipIndex): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      version: ix.version,
      layer: ix.layer,
      uncompressedSize: ix.uncompressedSize,
      spanSize: ix.spanSize,
      chunkSize: ix.chunkSize,
      checkpoints: ix.checkpoints.map((c) => [c.in, c.bits, c.out]),
      marks: ix.marks.flatMap(([i, o], k) =>
        k === 0 ? [i, o] : [i - ix.marks[k - 1][0], o - ix.marks[k - 1][1]],
      ),
    }),
  );
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const parts = [MAGIC, u32(header.length), header, u32(ix.toc.length), ix.toc];
  for (const c of ix.checkpoints) parts.push(c.window);
  // mtime 0 in the gzip header (node writes 0): the same index gives the same bytes.
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

export interface ParseLimits {
  /** Most uncompressed bytes (default 256 MiB). */
  maxBytes?: number;
}

/** Parses and checks a serialized index; every violation is a FormatError naming it. */
export function parseGzipIndex(blob: Uint8Array, limits: ParseLimits = {}): GzipIndex {
  const max = limits.maxBytes ?? MAX_INDEX_BYTES;
  let raw: Buffer;
  try {
    raw = gunzipSync(blob, { maxOutputLength: max });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw new FormatError(`gzip index is larger than the limit of ${max} bytes`);
    throw new FormatError(`gzip index is not valid gzip (${(e as Error).message})`);
  }
  const bad = (why: string): never => {
    throw new FormatError(`gzip index: ${why}`);
  };
  if (raw.length < 16 || !raw.subarray(0, 8).equals(MAGIC)) bad("bad magic");
  let p = 8;
  const hl = raw.readUInt32BE(p);
  p += 4;
  if (hl > MAX_HEADER_JSON || p + hl + 4 > raw.length) bad("header length out of range");
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(raw.toString("utf8", p, p + hl));
  } catch {
    return bad("header is not JSON");
  }
  p += hl;
  if (typeof h !== "object" || h === null) bad("header is not an object");
  if (h.version !== 1) bad(`unsupported version ${JSON.stringify(h.version)}`);
  const layer = h.layer as { digest?: unknown; size?: unknown } | undefined;
  if (
    typeof layer !== "object" ||
    layer === null ||
    typeof layer.digest !== "string" ||
    !/^sha256:[0-9a-f]{64}$/.test(layer.digest)
  )
    bad("layer digest missing or not sha256");
  const int = (v: unknown, what: string, min = 0): number =>
    Number.isSafeInteger(v) && (v as number) >= min ? (v as number) : bad(`${what} is not valid`);
  const size = int(layer?.size, "layer size", 1);
  const uncompressedSize = int(h.uncompressedSize, "uncompressed size");
  const spanSize = int(h.spanSize, "span size", 1);
  const chunkSize = int(h.chunkSize, "chunk size", 1);
  const tl = raw.readUInt32BE(p);
  p += 4;
  if (p + tl > raw.length) bad("TOC length out of range");
  const toc = raw.subarray(p, p + tl);
  p += tl;
  if (!Array.isArray(h.checkpoints) || h.checkpoints.length === 0) bad("no checkpoints");
  const list = h.checkpoints as unknown[];
  const checkpoints: Checkpoint[] = [];
  let prev: ResumePoint | undefined;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (!Array.isArray(c) || c.length !== 3) bad(`checkpoint ${i} is not [in, bits, out]`);
    const [cin, bits, out] = c as unknown[];
    const at = `checkpoint ${i}`;
    const inOff = int(cin, `${at} compressed offset`, 1);
    const b = int(bits, `${at} bit offset`);
    const o = int(out, `${at} uncompressed offset`);
    if (b > 7) bad(`${at} bit offset ${b} is not 0-7`);
    if (inOff > size) bad(`${at} is past the end of the layer (${inOff} > ${size})`);
    if (o > uncompressedSize) bad(`${at} is past the uncompressed size`);
    if (i === 0 && (o !== 0 || b !== 0)) bad("first checkpoint is not the start of the stream");
    if (prev && (inOff <= prev.in || o <= prev.out)) bad(`${at} is out of order`);
    const wl = Math.min(o, WINDOW_SIZE);
    if (p + wl > raw.length) bad(`${at} window is cut short`);
    checkpoints.push({ in: inOff, bits: b, out: o, window: raw.subarray(p, p + wl) });
    p += wl;
    prev = checkpoints[i];
  }
  if (p !== raw.length) bad(`${raw.length - p} bytes after the last window`);
  if (!Array.isArray(h.marks) || h.marks.length % 2 !== 0) bad("marks are not [in, out] pairs");
  const flat = h.marks as unknown[];
  const marks: [number, number][] = [];
  let mi = 0;
  let mo = 0;
  for (let k = 0; k < flat.length; k += 2) {
    mi += int(flat[k], `mark ${k / 2} compressed offset`);
    const d = int(flat[k + 1], `mark ${k / 2} uncompressed offset`, 1);
    mo += d;
    if (mi > size || mo > uncompressedSize) bad(`mark ${k / 2} is past the end of the layer`);
    marks.push([mi, mo]);
  }
  return {
    version: 1,
    layer: { digest: layer?.digest as string, size },
    uncompressedSize,
    spanSize,
    chunkSize,
    checkpoints,
    marks,
    toc,
  };
}

/** The checkpoint at or before uncompressed offset `off` (binary search). */
export function checkpointBefore(cps: readonly Checkpoint[], off: number): number {
  let lo = 0;
  let hi = cps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cps[mid].out <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The compressed bytes that hold uncompressed [off, off + len), and where to resume. */
export interface Span {
  /** Index of the checkpoint to resume at. */
  checkpoint: number;
  /** Compressed range [start, end) to fetch: resumeStart of that checkpoint to the next needed. */
  start: number;
  end: number;
  /** Uncompressed offset where the fetched bytes end (the next checkpoint's, or the tar's end). */
  out: number;
}

/**
 * From the checkpoint at or before `off` to the first checkpoint at or after `off + len`
 * (its first byte included when the boundary is mid-byte), or the end of the layer.
 */
export function spanFor(ix: GzipIndex, off: number, len: number): Span {
  const cps = ix.checkpoints;
  const k = checkpointBefore(cps, off);
  let j = k + 1;
  while (j < cps.length && cps[j].out < off + len) j++;
  let end = j < cps.length ? cps[j].in : ix.layer.size;
  let out = j < cps.length ? cps[j].out : ix.uncompressedSize;
  // A mark before that, past the bytes needed, ends the fetch sooner.
  const marks = ix.marks;
  let lo = 0;
  let hi = marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (marks[mid][1] < off + len) lo = mid + 1;
    else hi = mid;
  }
  const start = resumeStart(cps[k]);
  if (lo < marks.length && marks[lo][0] < end && marks[lo][0] > start) {
    end = marks[lo][0];
    out = marks[lo][1];
  }
  return { checkpoint: k, start, end, out };
}

/**
 * The most uncompressed bytes a reader inflates from one span: an index whose spans hold
 * more (the builder keeps them under 64 MiB and one deflate block) is refused at read.
 */
export const MAX_SPAN_OUT = 256 << 20;

/** Uncompressed [off, off + len) from the fetched bytes of `span` (fewer if they end first). */
export function inflateSpan(
  ix: GzipIndex,
  span: Span,
  compressed: Uint8Array,
  off: number,
  len: number,
): Uint8Array {
  const cp = ix.checkpoints[span.checkpoint];
  if (off + len - cp.out > MAX_SPAN_OUT)
    throw new FormatError(
      `gzip index: a span of ${off + len - cp.out} uncompressed bytes (more than ${MAX_SPAN_OUT})`,
    );
  return inflateFrom(cp, cp.window, compressed, off - cp.out, len);
}
