/**
 * A streaming tar reader: 512-byte header blocks, PAX ('x', 'g') and GNU long-name ('L',
 * 'K') headers applied to the entry that follows, bodies streamed as they arrive (memory is
 * bounded by one input chunk plus one extended header of at most MAX_EXTENDED bytes).
 *
 * It gives the raw header fields that byte-exact re-encoding needs (names, link names and
 * PAX values as byte strings, the raw mode, the type flag byte, the GNU format and its
 * atime/ctime) and leaves their meaning to tar-input.ts. Every malformed-input condition is
 * a FormatError made here; errors of the underlying stream pass through unchanged.
 */
import { type ByteString, bytesToByteString } from "./byte-string.js";
import { FormatError } from "./errors.js";

const BLOCK = 512;
/** The largest PAX or GNU long-name payload accepted (tar-stream's limit too). */
export const MAX_EXTENDED = 4 * 1024 * 1024;

export interface RawTarHeader {
  /** The type flag byte (0 for a v7 regular file). */
  typeflag: number;
  name: ByteString;
  /** Empty when the field is empty. */
  linkname: ByteString;
  mode: number;
  uid: number;
  gid: number;
  /** The body size (a PAX size record overrides the header field). */
  size: number;
  mtime: number;
  uname: ByteString;
  gname: ByteString;
  devmajor: number;
  devminor: number;
  /** The header block has the GNU magic "ustar  \0". */
  gnuFormat: boolean;
  gnuAtime?: number;
  gnuCtime?: number;
  /** The entry's PAX records (global records merged under them), undefined without a PAX header. */
  pax?: Map<string, ByteString>;
}

export interface RawTarEntry {
  header: RawTarHeader;
  /** Offset of the body's first byte in the tar stream (after the header blocks). */
  offset: number;
  /** The body: must be consumed (or abandoned) before the next entry is requested. */
  body: AsyncIterable<Uint8Array>;
}

const EMPTY = Buffer.alloc(0);

/** Pulls exact byte counts from an async iterable of chunks. */
class ByteQueue {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private done = false;
  /** Stream offset of `buf`'s first byte. */
  private base = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const c = r.value;
    this.base += this.buf.length;
    this.buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    this.pos = 0;
    return true;
  }

  /** Exactly n bytes, or null at a clean end (no byte left); throws on a partial read. */
  async exact(n: number, what: string): Promise<Buffer | null> {
    if (this.pos === this.buf.length && !(await this.more())) return null;
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (this.pos === this.buf.length && !(await this.more())) throw truncated(what);
      const k = Math.min(n - got, this.buf.length - this.pos);
      this.buf.copy(out, got, this.pos, this.pos + k);
      this.pos += k;
      got += k;
    }
    return out;
  }

  /** Bytes of the stream consumed so far. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Up to `max` bytes (at least one) as a view of the current input chunk. */
  async some(max: number, what: string): Promise<Buffer> {
    if (this.pos === this.buf.length && !(await this.more())) throw truncated(what);
    const k = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + k);
    this.pos += k;
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    while (n > 0) n -= (await this.some(n, what)).length;
  }

  /** Whatever follows the end-of-archive marker is ignored (as GNU tar and Go do). */
  async discard(): Promise<void> {
    this.pos = this.buf.length;
    while (await this.more()) this.pos = this.buf.length;
  }
}

const truncated = (what: string): FormatError =>
  new FormatError(`truncated input (unexpected end of tar data in ${what})`);

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** Parses a tar stream (already decompressed) into entries with raw header fields. */
export async function* readRawTar(input: AsyncIterable<Uint8Array>): AsyncGenerator<RawTarEntry> {
  const it = input[Symbol.asyncIterator]();
  const q = new ByteQueue(it);
  let zeroBlocks = 0;
  let paxGlobal: Map<string, ByteString> | undefined;
  let pax: Map<string, ByteString> | undefined;
  let longName: ByteString | undefined;
  let longLink: ByteString | undefined;
  try {
    for (;;) {
      const blk = await q.exact(BLOCK, "a header");
      if (blk === null) return; // EOF at a block boundary: the end, even without the marker
      if (isZeroBlock(blk)) {
        // Two zero blocks end the archive.
        if (++zeroBlocks >= 2) {
          await q.discard();
          return;
        }
        continue;
      }
      zeroBlocks = 0;
      const h = decodeBlock(blk);
      const flag = h.typeflag;
      // 'x' PAX, 'g' global PAX, 'L' GNU long name, 'K' GNU long link, 'N' old GNU long name.
      if (flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b || flag === 0x4e) {
        if (h.size > MAX_EXTENDED)
          throw new FormatError(`invalid tar: extended header of ${h.size} bytes (too large)`);
        const data = h.size === 0 ? EMPTY : await q.exact(h.size, "an extended header");
        if (data === null) throw truncated("an extended header");
        await q.skip(padding(h.size), "an extended header");
        if (flag === 0x78) {
          const own = decodePax(data);
          pax = paxGlobal ? new Map([...paxGlobal, ...own]) : own;
        } else if (flag === 0x67) paxGlobal = decodePax(data);
        else if (flag === 0x4b) longLink = cString(data, 0, data.length);
        else longName = cString(data, 0, data.length);
        continue;
      }
      // Empty long names and PAX path/linkpath/size are ignored (as tar-stream read them).
      if (longName) h.name = longName;
      if (longLink) h.linkname = longLink;
      if (pax) {
        const path = pax.get("path");
        const linkpath = pax.get("linkpath");
        const size = pax.get("size");
        if (path) h.name = path;
        if (linkpath) h.linkname = linkpath;
        if (size) h.size = Number.parseInt(size, 10);
        h.pax = pax;
      }
      longName = longLink = pax = undefined;
      if (!(h.size >= 0) || !Number.isSafeInteger(h.size))
        throw new FormatError(`invalid tar header: size of ${JSON.stringify(h.name)}`);
      // '\0' with a name ending in '/' is a directory (legacy archives; Go's rule).
      if (flag === 0 && h.name.endsWith("/")) h.typeflag = 0x35;
      // A directory has no body (its size field is not skipped), as tar-stream read it.
      let remaining = h.typeflag === 0x35 ? 0 : h.size;
      const size = remaining;
      let current = true;
      const body =
        size === 0
          ? EMPTY_BODY
          : (async function* () {
              while (remaining > 0) {
                if (!current) throw new Error("a tar entry body read after the next entry");
                const c = await q.some(remaining, "a file body");
                remaining -= c.length;
                yield c;
              }
            })();
      yield { header: h, offset: q.offset, body };
      current = false;
      await q.skip(remaining + padding(size), "a file body");
    }
  } finally {
    await it.return?.();
  }
}

const EMPTY_BODY: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Bytes up to the first NUL (or the end of the field), as a byte string. */
function cString(b: Buffer, off: number, size: number): ByteString {
  let end = off;
  const max = off + size;
  while (end < max && b[end] !== 0) end++;
  return bytesToByteString(b, off, end);
}

function decodeBlock(b: Buffer): RawTarHeader {
  let sum = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[i];
    sum += v;
    signed += v > 127 ? v - 256 : v;
  }
  let want: number;
  try {
    want = octal(b, 148, 8);
  } catch {
    want = -1; // not even a number: random bytes
  }
  if (want !== sum && want !== signed)
    throw new FormatError(
      "invalid tar header (checksum mismatch: the tar is corrupted, or it needs to be gunzipped)",
    );
  let name = cString(b, 0, 100);
  const magic = b.toString("latin1", 257, 263);
  const gnuFormat = b.toString("latin1", 257, 265) === "ustar  \0";
  if (magic === "ustar\0" && b[345] !== 0) name = `${cString(b, 345, 155)}/${name}` as ByteString;
  const typeflag = b[156];
  const h: RawTarHeader = {
    typeflag,
    name,
    linkname: cString(b, 157, 100),
    mode: looseNumeric(b, 100, 8),
    uid: numeric(b, 108, 8),
    gid: numeric(b, 116, 8),
    size: numeric(b, 124, 12),
    mtime: numeric(b, 136, 12),
    uname: cString(b, 265, 32),
    gname: cString(b, 297, 32),
    devmajor: numeric(b, 329, 8),
    devminor: numeric(b, 337, 8),
    gnuFormat,
  };
  if (gnuFormat) {
    if (b[345] !== 0) h.gnuAtime = looseNumeric(b, 345, 12);
    if (b[357] !== 0) h.gnuCtime = looseNumeric(b, 357, 12);
  }
  return h;
}

/** A numeric field: base-256 when the high bit is set, else octal. */
function numeric(b: Buffer, off: number, size: number): number {
  return b[off] & 0x80 ? base256(b, off, size) : octal(b, off, size);
}

/** Base-256 (GNU): 0x80 positive, 0xff two's complement negative; anything else is invalid. */
function base256(b: Buffer, off: number, size: number): number {
  const first = b[off];
  if (first !== 0x80 && first !== 0xff)
    throw new FormatError("invalid tar header (bad base-256 number)");
  const neg = first === 0xff;
  let v = 0;
  for (let i = off + 1; i < off + size; i++) v = v * 256 + (neg ? 0xff - b[i] : b[i]);
  return neg ? -v : v;
}

/**
 * An octal field: leading spaces skipped, ended by a space or the field's end, leading
 * NULs skipped, then read up to the first non-octal byte (tar-stream's reading).
 */
function octal(b: Buffer, off: number, size: number): number {
  const end = off + size;
  let i = off;
  while (i < end && b[i] === 0x20) i++;
  let stop = i;
  while (stop < end && b[stop] !== 0x20) stop++;
  while (i < stop && b[i] === 0) i++;
  if (i === stop) return 0;
  let v = 0;
  const first = i;
  for (; i < stop; i++) {
    const c = b[i];
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
  }
  if (i === first) throw new FormatError("invalid tar header (bad octal number)");
  return v;
}

/**
 * The mode and the GNU atime/ctime fields, kept whole: base-256 with the first byte's low
 * seven bits, or octal text up to the first NUL or space (0 when empty).
 */
function looseNumeric(b: Buffer, off: number, size: number): number {
  let v = 0;
  if (b[off] & 0x80) {
    v = b[off] & 0x7f;
    for (let i = off + 1; i < off + size; i++) v = v * 256 + b[i];
    return v;
  }
  for (let i = off; i < off + size; i++) {
    const c = b[i];
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
  }
  return v;
}

/** PAX records "LEN key=value\n"; values are kept as bytes (binary xattrs, non-UTF-8 names). */
function decodePax(buf: Buffer): Map<string, ByteString> {
  const out = new Map<string, ByteString>();
  let p = 0;
  while (p < buf.length) {
    let i = p;
    while (i < buf.length && buf[i] !== 0x20) i++;
    const len = Number.parseInt(buf.toString("latin1", p, i), 10);
    if (!len || p + len > buf.length) break;
    const rec = buf.toString("latin1", i + 1, p + len - 1);
    const eq = rec.indexOf("=");
    if (eq === -1) break;
    out.set(rec.slice(0, eq), rec.slice(eq + 1) as ByteString);
    p += len;
  }
  return out;
}
