/**
 * One streaming pass over a gzip stream that yields its uncompressed bytes and records
 * checkpoints: deflate block boundaries, about every `spanSize` compressed bytes, where a
 * reader can later resume inflating (deflate-resume.ts).
 *
 * The bulk of the stream is inflated by node:zlib's native inflater (zlib-handle.ts); only
 * once a span is due does it switch to Z_BLOCK to stop at the next block boundary. zlib
 * tells a boundary's byte position but node:zlib not its bit offset (zlib's data_type), so
 * each of the eight possible offsets is tried: an inflate resumed there must give the same
 * bytes as the stream itself. Offsets that all do so read a stored block alike (see resolve);
 * a boundary left in doubt is passed over for the next one.
 */
import zlib from "node:zlib";
import { inflateFrom, type ResumePoint, WINDOW_SIZE } from "./deflate-resume.js";
import { FormatError } from "./errors.js";
import { RawInflater, Z_BLOCK, Z_NO_FLUSH } from "./zlib-handle.js";

export interface Checkpoint extends ResumePoint {
  /** The uncompressed bytes before `out` (32 KiB, less at the start). */
  window: Uint8Array;
}

export interface CheckpointOptions {
  /** Compressed bytes between checkpoints (at least; the next block boundary after). */
  spanSize: number;
  /** Uncompressed bytes between checkpoints at most, for data that compresses very well. */
  maxSpanOut?: number;
}

const OUT_SIZE = 1 << 20;
/** Output of one inflate call at most, and so the spacing of the input-end marks. */
const MARK_OUT = 64 * 1024;
/** Compressed bytes given to one inflate call. */
const PIECE = 256 * 1024;
/** Compressed bytes a trial resume inflates, and the output it compares. */
const TRIAL_IN = 16 * 1024;
const TRIAL_OUT = 32 * 1024;
/** Compressed bytes of the longest stored block (65535 bytes, a 5-byte header). */
const STORED_BLOCK_MAX = 65535 + 5;
/** A boundary with fewer compressed bytes after it in the current input chunk is passed over. */
const MIN_TRIAL_IN = 1024;
/** The largest gzip header accepted (the FEXTRA field alone may be 64 KiB). */
const MAX_HEADER = 1 << 20;

interface Pending {
  in: number;
  out: number;
  window: Uint8Array;
  /** Each trial's output, and the BFINAL bit it read first. */
  trials: { bits: number; data: Uint8Array; final: number }[];
  need: number;
  /** The trials that gave the stream's bytes, the most of them (set when first resolved). */
  best?: Pending["trials"];
}

/** Inflates one gzip member, recording checkpoints; read its fields after the pass. */
export class GzipCheckpointer {
  readonly checkpoints: Checkpoint[] = [];
  /**
   * Input ends, about every MARK_OUT bytes of output: [in, out] says the first `out`
   * uncompressed bytes inflate from the first `in` compressed bytes. A reader fetches up to
   * the mark after the bytes it needs, not to the next checkpoint.
   */
  readonly marks: [number, number][] = [];
  compressedSize = 0;
  uncompressedSize = 0;
  private readonly spanSize: number;
  private readonly maxSpanOut: number;

  constructor(opts: CheckpointOptions) {
    if (!Number.isSafeInteger(opts.spanSize) || opts.spanSize < 64 * 1024)
      throw new RangeError("span size must be an integer of at least 65536");
    this.spanSize = opts.spanSize;
    // A reader inflates up to a span at once (and refuses more than MAX_SPAN_OUT).
    this.maxSpanOut = opts.maxSpanOut ?? Math.min(opts.spanSize * 8, 64 << 20);
  }

  /** The uncompressed stream, in views of 1 MiB buffers that are never written again. */
  async *inflate(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const inf = new RawInflater();
    let cur = Buffer.allocUnsafe(OUT_SIZE);
    let curBase = 0;
    let fill = 0;
    let prev: Buffer | undefined;
    let prevBase = 0;
    let outTotal = 0;
    let crc = 0;
    let head: Buffer | undefined = Buffer.alloc(0);
    let chunkBase = 0;
    let lastByte = 0;
    let ended = false;
    let trailer = Buffer.alloc(0);
    let wantBoundary = false;
    let pending: Pending | undefined;
    let lastMark = 0;

    const bytesAt = (from: number, to: number): Uint8Array => {
      if (from >= curBase) return cur.subarray(from - curBase, to - curBase);
      if (!prev || from < prevBase) throw new Error("checkpoint window no longer held");
      if (to <= curBase) return prev.subarray(from - prevBase, to - prevBase);
      return Buffer.concat([prev.subarray(from - prevBase), cur.subarray(0, to - curBase)]);
    };
    const last = (): Checkpoint => this.checkpoints[this.checkpoints.length - 1];
    /** Decides a pending boundary; false while that needs more of the stream. */
    const resolve = (p: Pending, inAt: number, atEnd: boolean): boolean => {
      if (!p.best) {
        const truth = bytesAt(p.out, Math.min(outTotal, p.out + p.need));
        const right = p.trials.filter(
          (t) =>
            t.data.length > 0 &&
            t.data.length <= truth.length &&
            Buffer.compare(t.data, truth.subarray(0, t.data.length)) === 0,
        );
        const longest = Math.max(0, ...right.map((t) => t.data.length));
        p.best = right.filter((t) => t.data.length === longest);
      }
      // Several offsets giving the same bytes: a stored block, whose header (3 bits, then
      // padding to the same byte) reads alike from them; they resume alike if they read the
      // same BFINAL bit. If not, the stream going on past the longest stored block says the
      // block was not the last: BFINAL 0.
      let pick = p.best;
      if (!pick.every((t) => t.final === pick[0].final)) {
        if (inAt > p.in + STORED_BLOCK_MAX) pick = pick.filter((t) => t.final === 0);
        else if (!atEnd) return false;
        else pick = [];
      }
      if (pick.length > 0)
        this.checkpoints.push({ in: p.in, bits: pick[0].bits, out: p.out, window: p.window });
      else wantBoundary = true; // the next boundary, then
      return true;
    };

    try {
      for await (let chunk of fixedPieces(input, PIECE)) {
        let pos = 0;
        if (head) {
          head = Buffer.concat([head, chunk]);
          const len = gzipHeaderLength(head);
          if (len === undefined) {
            if (head.length > MAX_HEADER) throw new FormatError("gzip header is too large");
            continue;
          }
          chunk = head;
          pos = len;
          head = undefined;
          this.checkpoints.push({ in: len, bits: 0, out: 0, window: new Uint8Array(0) });
        }
        while (pos < chunk.length) {
          if (ended) {
            trailer = Buffer.concat([trailer, chunk.subarray(pos)]);
            if (trailer.length > 8)
              throw new FormatError(
                "data after the end of the gzip stream (multi-member gzip is not indexed)",
              );
            pos = chunk.length;
            break;
          }
          if (fill === OUT_SIZE) {
            prev = cur;
            prevBase = curBase;
            cur = Buffer.allocUnsafe(OUT_SIZE);
            curBase += OUT_SIZE;
            fill = 0;
          }
          const mode = wantBoundary ? Z_BLOCK : Z_NO_FLUSH;
          const room = Math.min(OUT_SIZE - fill, MARK_OUT);
          const s = inf.write(mode, chunk, pos, chunk.length - pos, cur, fill, room);
          if (s.consumed > 0) lastByte = chunk[pos + s.consumed - 1];
          pos += s.consumed;
          if (s.consumed === 0 && s.produced === 0) {
            ended = true;
            continue;
          }
          if (s.produced > 0) {
            const view = cur.subarray(fill, fill + s.produced);
            fill += s.produced;
            outTotal += s.produced;
            crc = zlib.crc32(view, crc);
            yield view;
          }
          if (
            pending &&
            outTotal >= pending.out + pending.need &&
            resolve(pending, chunkBase + pos, false)
          )
            pending = undefined;
          const inAt = chunkBase + pos;
          if (s.produced > 0 && outTotal - lastMark >= MARK_OUT) {
            this.marks.push([inAt, outTotal]);
            lastMark = outTotal;
          }
          if (mode === Z_BLOCK && pos < chunk.length && s.produced < room) {
            // Stopped with input and room left: at a block boundary.
            if (chunk.length - pos >= MIN_TRIAL_IN) {
              pending = this.trial(inAt, outTotal, lastByte, chunk.subarray(pos), bytesAt);
              wantBoundary = false;
            }
          } else if (!pending && !wantBoundary) {
            const cp = last();
            wantBoundary = inAt - cp.in >= this.spanSize || outTotal - cp.out >= this.maxSpanOut;
          }
        }
        chunkBase += chunk.length;
      }
      if (head) throw new FormatError("truncated gzip stream (no complete header)");
      if (!ended) throw new FormatError("truncated gzip stream (unexpected end of deflate data)");
      if (trailer.length < 8) throw new FormatError("truncated gzip stream (no trailer)");
      if (pending) resolve(pending, chunkBase, true);
      // Checkpoints at the very end resume nothing.
      while (this.checkpoints.length > 1 && last().out >= outTotal) this.checkpoints.pop();
      if (trailer.readUInt32LE(0) !== crc >>> 0)
        throw new FormatError("gzip CRC mismatch (corrupted gzip data)");
      if (trailer.readUInt32LE(4) !== outTotal % 2 ** 32)
        throw new FormatError("gzip length mismatch (corrupted gzip data)");
      this.compressedSize = chunkBase;
      this.uncompressedSize = outTotal;
    } finally {
      inf.close();
    }
  }

  /** Resumes at each possible bit offset of the boundary, for resolve() to compare. */
  private trial(
    inAt: number,
    out: number,
    lastByte: number,
    after: Uint8Array,
    bytesAt: (from: number, to: number) => Uint8Array,
  ): Pending {
    const window = Buffer.from(bytesAt(Math.max(0, out - WINDOW_SIZE), out));
    const span = Buffer.concat([Buffer.of(lastByte), after.subarray(0, TRIAL_IN)]);
    const trials: Pending["trials"] = [];
    let need = 0;
    for (let bits = 0; bits < 8; bits++) {
      try {
        const p = { in: inAt, bits, out };
        const data = inflateFrom(p, window, bits ? span : span.subarray(1), 0, TRIAL_OUT);
        // The block's first bit (BFINAL): bit 8-bits of byte in-1, or bit 0 of byte in.
        const final = bits ? (lastByte >> (8 - bits)) & 1 : span[1] & 1;
        trials.push({ bits, data, final });
        need = Math.max(need, data.length);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
      }
    }
    return { in: inAt, out, window, trials, need };
  }
}

/**
 * The input in pieces of exactly `size` bytes (the last may be shorter): every inflate call,
 * and so every checkpoint, then depends on the stream alone, not on how it was read.
 */
async function* fixedPieces(
  input: AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Buffer> {
  let acc = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const piece of input) {
    let b = Buffer.isBuffer(piece)
      ? piece
      : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (b.length > 0) {
      if (fill === 0 && b.length >= size) {
        yield b.subarray(0, size);
        b = b.subarray(size);
        continue;
      }
      const k = b.copy(acc, fill);
      fill += k;
      b = b.subarray(k);
      if (fill === size) {
        yield acc;
        acc = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield acc.subarray(0, fill);
}

/** The gzip header's length, undefined when `b` does not hold all of it yet. */
export function gzipHeaderLength(b: Uint8Array): number | undefined {
  if (b.length < 10) return undefined;
  if (b[0] !== 0x1f || b[1] !== 0x8b) throw new FormatError("not gzip (bad magic bytes)");
  if (b[2] !== 8) throw new FormatError(`gzip compression method ${b[2]} is not deflate`);
  const flags = b[3];
  if (flags & 0xe0) throw new FormatError("gzip header has reserved flags set");
  let p = 10;
  if (flags & 4) {
    if (b.length < p + 2) return undefined;
    p += 2 + (b[p] | (b[p + 1] << 8));
  }
  for (const flag of [8, 16]) {
    if (!(flags & flag)) continue;
    while (p < b.length && b[p] !== 0) p++;
    if (p >= b.length) return undefined;
    p++;
  }
  if (flags & 2) p += 2;
  return p <= b.length ? p : undefined;
}
