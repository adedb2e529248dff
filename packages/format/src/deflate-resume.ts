/**
 * Resuming inflation in the middle of a deflate stream, at a block boundary recorded by an
 * index (a checkpoint): the 32 KiB window before it becomes the inflater's dictionary, and
 * the boundary's bit offset is made byte-aligned by empty deflate blocks put in front of the
 * bits left in its first byte (zlib's examples/zran.c does this where inflatePrime is
 * missing; node:zlib has no inflatePrime).
 */
import { FormatError } from "./errors.js";
import { RawInflater, Z_NO_FLUSH } from "./zlib-handle.js";

/** Largest deflate window: the most history a back-reference can reach. */
export const WINDOW_SIZE = 32 * 1024;

/** Where a deflate block starts: `bits` (0-7) high bits of byte in-1, then byte `in` on. */
export interface ResumePoint {
  /** Compressed offset of the first whole byte after the boundary. */
  in: number;
  /** Bits of byte in-1 that belong to the block (its high bits); 0: byte-aligned. */
  bits: number;
  /** Uncompressed offset of the boundary. */
  out: number;
}

/** First compressed byte a resume at `p` needs. */
export function resumeStart(p: ResumePoint): number {
  return p.in - (p.bits ? 1 : 0);
}

// An empty, non-final dynamic block of 95 bits (a fact of deflate, the one zran.c uses): an
// odd bit count, which empty fixed blocks (10 bits each) cannot make.
const EMPTY_DYNAMIC = [4, 0xe0, 0x81, 8, 0, 0, 0, 0, 0x20, 0xa8, 0xab, 0x1f];
const EMPTY_DYNAMIC_BITS = 95;
// An empty non-final fixed block: BFINAL 0, BTYPE 01, end-of-block code 0000000 (LSB first).
const EMPTY_FIXED = 2;
const EMPTY_FIXED_BITS = 10;

/**
 * Whole bytes that inflate to nothing and leave the inflater just after the low `bits`
 * bits of `value`: empty blocks, then those bits, ending on a byte boundary.
 */
export function preface(bits: number, value: number): Uint8Array {
  if (!Number.isInteger(bits) || bits < 0 || bits > 7)
    throw new RangeError(`bad bit count ${bits}`);
  if (bits === 0) return new Uint8Array(0);
  const out = new Uint8Array(16);
  let have = 0;
  const append = (v: number, n: number): void => {
    for (let i = 0; i < n; i++, have++) if ((v >> i) & 1) out[have >> 3] |= 1 << (have & 7);
  };
  if (bits & 1) {
    out.set(EMPTY_DYNAMIC);
    have = EMPTY_DYNAMIC_BITS;
  }
  while ((have + bits) & 7) append(EMPTY_FIXED, EMPTY_FIXED_BITS);
  append(value & ((1 << bits) - 1), bits);
  return out.subarray(0, have >> 3);
}

/**
 * Inflates from resume point `p`: `span` holds the compressed bytes from resumeStart(p)
 * (to the next checkpoint or the end of the stream), `window` the uncompressed bytes
 * before p.out (at most 32 KiB). Returns the `length` bytes starting `skip` bytes after the
 * point, or fewer if the span ends first. Never holds more than `length` output bytes.
 */
export function inflateFrom(
  p: ResumePoint,
  window: Uint8Array,
  span: Uint8Array,
  skip: number,
  length: number,
): Uint8Array {
  if (window.length > WINDOW_SIZE) throw new FormatError(`window of ${window.length} bytes`);
  const inf = new RawInflater(window);
  try {
    const out = Buffer.allocUnsafe(length);
    let body = span;
    if (p.bits) {
      if (span.length === 0) return new Uint8Array(0);
      const pre = preface(p.bits, span[0] >> (8 - p.bits));
      inf.write(Z_NO_FLUSH, pre, 0, pre.length, out, 0, 0);
      body = span.subarray(1);
    }
    const discard = skip > 0 ? Buffer.allocUnsafe(Math.min(skip, 256 * 1024)) : out;
    let pos = 0;
    let got = 0;
    while (got < length) {
      const skipping = skip > 0;
      const target = skipping ? discard : out;
      const off = skipping ? 0 : got;
      const room = skipping ? Math.min(skip, discard.length) : length - got;
      const s = inf.write(Z_NO_FLUSH, body, pos, body.length - pos, target, off, room);
      pos += s.consumed;
      if (skipping) skip -= s.produced;
      else got += s.produced;
      if (s.consumed === 0 && s.produced === 0) break; // input used up, or the stream ended
    }
    return got === length ? out : out.subarray(0, got);
  } finally {
    inf.close();
  }
}
