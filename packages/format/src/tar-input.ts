import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type tarStream from "tar-stream";
import { FormatError } from "./errors.js";
import { fromByteString } from "./go-json.js";
import { cleanEntryName, formatPaxTime, type TarHeader, type TarType } from "./tar-header.js";

// tar-stream decodes PAX values as UTF-8, masks the mode to 0o7777, derives a '\0' entry's
// type before promoting "x/" names to directories and stalls on a zero-size PAX header.
// The reference keeps raw bytes (binary xattrs, non-UTF-8 names) and the raw mode, so we
// load a private copy of tar-stream's header codec and extractor and fix them there;
// other tar-stream users in the process keep the unmodified module.
const require = createRequire(import.meta.url);
const tarDir = dirname(require.resolve("tar-stream"));
type ExtractFactory = (
  opts?: object,
) => import("node:stream").Writable & AsyncIterable<{ header: ParsedHeader } & Readable>;
const privateExtract: ExtractFactory = (() => {
  const files = [join(tarDir, "headers.js"), join(tarDir, "extract.js")];
  const saved = files.map((f) => require.cache[f]);
  for (const f of files) delete require.cache[f];
  try {
    // biome-ignore lint/suspicious/noExplicitAny: patching a CommonJS module object
    const headers = require(files[0]) as any;
    patchHeaders(headers);
    const extract = require(files[1]) as ExtractFactory;
    // biome-ignore lint/suspicious/noExplicitAny: patching tar-stream's Extract class
    const proto = Object.getPrototypeOf(extract()) as any;
    const consume = proto._consumeHeader;
    const write = proto._write;
    const final = proto._final;
    type Self = {
      _longHeader: boolean;
      _missing: number;
      _header: object | null;
      _buffer: { buffered: number; shiftFirst(n: number): Uint8Array | null };
      _consumeLongHeader(): boolean;
      /** Zero blocks in a row; two end the archive (as in Go's archive/tar). */
      zeroBlocks?: number;
      archiveEnded?: boolean;
    };
    proto._consumeHeader = function (this: Self) {
      if (this.archiveEnded) return true;
      const r = consume.call(this);
      // A long header with no payload is complete at once (tar-stream would wait forever).
      if (this._longHeader && this._missing === 0) return this._consumeLongHeader();
      if (r === true && this._header === null) {
        this.zeroBlocks = (this.zeroBlocks ?? 0) + 1;
        if (this.zeroBlocks >= 2) {
          // End of archive: what follows is ignored, as GNU tar and Go do.
          this.archiveEnded = true;
          while (this._buffer.shiftFirst(this._buffer.buffered)) {}
        }
      } else this.zeroBlocks = 0;
      return r;
    };
    proto._write = function (this: Self, data: Uint8Array, cb: (e: Error | null) => void) {
      if (this.archiveEnded) return cb(null);
      return write.call(this, data, cb);
    };
    proto._final = function (this: Self & { _finished: boolean }, cb: (e: Error | null) => void) {
      if (this.archiveEnded) {
        this._finished = true;
        return cb(null);
      }
      return final.call(this, cb);
    };
    return extract;
  } finally {
    files.forEach((f, i) => {
      if (saved[i]) require.cache[f] = saved[i];
      else delete require.cache[f];
    });
  }
})();

// biome-ignore lint/suspicious/noExplicitAny: a CommonJS module object
function patchHeaders(tarHeaders: any): void {
  tarHeaders.decodePax = (buf: Buffer): Record<string, string> => {
    const result: Record<string, string> = {};
    let p = 0;
    while (p < buf.length) {
      let i = p;
      while (i < buf.length && buf[i] !== 0x20) i++;
      const len = Number.parseInt(buf.toString("latin1", p, i), 10);
      if (!len || p + len > buf.length) break;
      const rec = buf.toString("latin1", i + 1, p + len - 1);
      const eq = rec.indexOf("=");
      if (eq === -1) break;
      result[rec.slice(0, eq)] = rec.slice(eq + 1);
      p += len;
    }
    return result;
  };
  const origDecode = tarHeaders.decode;
  tarHeaders.decode = (buf: Buffer, enc: string, allowUnknown: boolean) => {
    const h = origDecode(buf, enc, allowUnknown);
    if (h) {
      h.typeflagByte = buf[156];
      if (buf.toString("latin1", 257, 265) === "ustar  \0") {
        h.gnuFormat = true;
        if (buf[345] !== 0) h.gnuAtime = decodeNumeric(buf, 345, 12);
        if (buf[357] !== 0) h.gnuCtime = decodeNumeric(buf, 357, 12);
      }
      if (buf[156] === 0 && h.type === "file" && h.name?.endsWith("/")) h.type = "directory";
      if (buf[100] !== 0x80) h.mode = decodeNumeric(buf, 100, 8);
    }
    return h;
  };
}

/** An octal or base-256 numeric tar field. */
function decodeNumeric(buf: Buffer, off: number, size: number): number {
  if (buf[off] & 0x80) {
    let v = BigInt(buf[off] & 0x7f);
    for (let i = 1; i < size; i++) v = (v << 8n) | BigInt(buf[off + i]);
    return Number(v);
  }
  const text = buf
    .toString("latin1", off, off + size)
    .replace(/[\0 ].*$/s, "")
    .trim();
  return Number.parseInt(text || "0", 8) || 0;
}

export type InputKind = "gzip" | "tar";

/** The first bytes tell gzip from tar; zstd and the rest are refused with a clear error. */
export function sniff(head: Uint8Array): InputKind {
  if (head.length === 0) throw new FormatError("empty input (not a tar or tar.gz)");
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    throw new FormatError("zstd-compressed input is not supported (decompress it first)");
  }
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString("latin1") === "ustar")
    return "tar";
  // An empty archive is just zero blocks.
  if (head.length >= 512 && head.subarray(0, 512).every((b) => b === 0)) return "tar";
  // A v7 tar has no magic: accept it if the header checksum is right.
  if (head.length >= 512 && v7ChecksumOK(head)) return "tar";
  throw new FormatError("not a tar or tar.gz (unrecognized magic bytes)");
}

function v7ChecksumOK(b: Uint8Array): boolean {
  const field = Buffer.from(b.subarray(148, 156))
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i];
  return sum === Number.parseInt(field, 8);
}

export interface InputEntry {
  header: TarHeader;
  /** Cleaned name (the reference's cleanEntryName), for duplicate detection and lookups. */
  clean: string;
  body: AsyncIterable<Uint8Array>;
}

/** Decompresses (when gzip) and parses a tar stream into entries with Go-style headers. */
export async function* readTarEntries(source: Readable): AsyncGenerator<InputEntry> {
  const head = await peek(source, 512);
  const kind = sniff(head.bytes);
  let stream: Readable = head.stream;
  if (kind === "gzip") {
    const gunzip = createGunzip({ chunkSize: 1 << 20 });
    stream.on("error", (e) => gunzip.destroy(e));
    stream = stream.pipe(gunzip);
  }
  // Pre-POSIX (v7) headers have no magic; sniff() already checked the checksum.
  const extract = privateExtract({ filenameEncoding: "latin1", allowUnknownFormat: true });
  stream.on("error", (e) => extract.destroy(e));
  stream.pipe(extract);
  try {
    for await (const entry of extract) {
      const header = toHeader(entry.header as ParsedHeader);
      yield {
        header,
        clean: cleanEntryName(header.name),
        body: inputBody(entry as AsyncIterable<Uint8Array>),
      };
      entry.resume(); // drain whatever the consumer left
    }
  } catch (e) {
    throw wrapInputError(e);
  } finally {
    source.destroy();
  }
}

/** An entry's body whose read errors (truncated or corrupt input) are typed as input errors. */
async function* inputBody(entry: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const c of entry) yield c;
  } catch (e) {
    throw wrapInputError(e);
  }
}

/** An error from a system call (fs, net): it has an errno code and the call's name. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException;
  return e instanceof Error && typeof err.code === "string" && typeof err.syscall === "string";
}

/** "no space left on device" rather than "ENOSPC: no space left on device, write". */
export function describeSystemError(e: Error): string {
  if (!isSystemError(e)) return e.message;
  if (e.code === "EPIPE") return "closed by the reader before the end (broken pipe)";
  const m = /^[A-Z0-9_]+: (.*?),/.exec(e.message);
  return m ? m[1] : e.message;
}

/**
 * Maps an error met while reading the input (zlib, tar-stream, the input's own reads) to
 * a FormatError that says what is wrong with the input. Only called where the input is
 * read: errors of the output or the spool never come through here.
 */
export function wrapInputError(e: unknown): Error {
  if (e instanceof FormatError) return e;
  const err = e as NodeJS.ErrnoException;
  const msg = err?.message ?? String(e);
  if (isSystemError(e)) return new FormatError(`cannot read the input: ${describeSystemError(e)}`);
  if (err?.code === "Z_BUF_ERROR" || /unexpected end/i.test(msg))
    return new FormatError(`truncated input (${msg})`);
  if (
    err?.code?.startsWith?.("Z_") ||
    /incorrect header check|invalid (block|distance|stored|code)|too many length/i.test(msg)
  ) {
    return new FormatError(`corrupted gzip data (${msg})`);
  }
  if (/tar|header/i.test(msg)) return new FormatError(`invalid tar (${msg})`);
  return err instanceof Error ? err : new Error(msg);
}

const TYPES: Record<string, TarType> = {
  file: "0",
  "contiguous-file": "0",
  link: "1",
  symlink: "2",
  "character-device": "3",
  "block-device": "4",
  directory: "5",
  fifo: "6",
};

const BASIC_PAX = new Set([
  "path",
  "linkpath",
  "size",
  "uid",
  "gid",
  "uname",
  "gname",
  "mtime",
  "atime",
  "ctime",
]);

type ParsedHeader = Omit<tarStream.Header, "pax"> & {
  pax?: Record<string, string> | null;
  typeflagByte?: number;
  gnuFormat?: boolean;
  gnuAtime?: number;
  gnuCtime?: number;
};

function toHeader(h: ParsedHeader): TarHeader {
  const type = h.type ? TYPES[h.type] : undefined;
  if (!type) {
    // e.g. 'S' (old GNU sparse), 'V', 'M': the reference refuses them too.
    const flag = String.fromCharCode(h.typeflagByte ?? 0x3f);
    throw new FormatError(
      `unsupported input tar entry type '${flag}' for ${JSON.stringify(fromByteString(h.name))}`,
    );
  }
  const pax = h.pax ?? undefined;
  const mtimeMs = h.mtime ? h.mtime.getTime() : 0;
  const header: TarHeader = {
    name: h.name,
    type,
    mode: h.mode ?? 0,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    size: type === "0" ? (h.size ?? 0) : 0,
    mtimeSec: Math.floor(mtimeMs / 1000),
    mtimeNsec: 0,
    linkname: h.linkname ?? "",
    uname: h.uname ?? "",
    gname: h.gname ?? "",
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
    xattrs: new Map(),
    paxExtra: new Map(),
    keepSubsecond: false,
  };
  if (h.gnuFormat && !pax) {
    header.gnu = true;
    header.gnuAtime = h.gnuAtime;
    header.gnuCtime = h.gnuCtime;
  }
  if (pax) {
    header.keepSubsecond = true;
    header.paxBasic = new Map();
    for (const k of BASIC_PAX) {
      if (pax[k] !== undefined && k !== "atime" && k !== "ctime") header.paxBasic.set(k, pax[k]);
    }
    const int = (k: string): number | undefined => {
      if (pax[k] === undefined) return undefined;
      const n = Number(pax[k]);
      if (!Number.isSafeInteger(n) || n < 0)
        throw new FormatError(
          `invalid PAX ${k} ${JSON.stringify(pax[k])} for ${JSON.stringify(h.name)}`,
        );
      return n;
    };
    header.uid = int("uid") ?? header.uid;
    header.gid = int("gid") ?? header.gid;
    if (pax.uname !== undefined) header.uname = pax.uname;
    if (pax.gname !== undefined) header.gname = pax.gname;
    if (pax.mtime !== undefined)
      [header.mtimeSec, header.mtimeNsec] = parsePaxTime(pax.mtime, h.name);
    for (const k of ["atime", "ctime"]) {
      if (pax[k] !== undefined) {
        const [s, ns] = parsePaxTime(pax[k], h.name);
        header.paxExtra.set(k, formatPaxTime(s, ns));
      }
    }
    for (const [k, v] of Object.entries(pax) as [string, string][]) {
      if (k.startsWith("SCHILY.xattr.")) header.xattrs.set(k.slice(13), v);
      else if (k.startsWith("GNU.sparse."))
        throw new FormatError(`sparse files are not supported: ${JSON.stringify(h.name)}`);
      else if (!BASIC_PAX.has(k)) header.paxExtra.set(k, v);
    }
  }
  return header;
}

/** Go's parsePAXTime: seconds, optional fraction (at most 9 digits kept). */
export function parsePaxTime(v: string, name: string): [number, number] {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (!m)
    throw new FormatError(`invalid PAX time ${JSON.stringify(v)} for ${JSON.stringify(name)}`);
  let sec = Number(m[2]);
  let nsec = Number(`${m[3] ?? ""}000000000`.slice(0, 9));
  if (m[1] === "-") {
    sec = -sec;
    if (nsec !== 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return [sec, nsec];
}

/** Reads at least `n` bytes (or to EOF) and gives back a stream that replays them. */
async function peek(source: Readable, n: number): Promise<{ bytes: Uint8Array; stream: Readable }> {
  const chunks: Buffer[] = [];
  let len = 0;
  for await (const c of source.iterator({ destroyOnReturn: false })) {
    chunks.push(c as Buffer);
    len += (c as Buffer).length;
    if (len >= n) break;
  }
  const bytes = Buffer.concat(chunks);
  const pt = new PassThrough({ highWaterMark: 1 << 20 });
  pt.write(bytes);
  source.on("error", (e) => pt.destroy(e));
  if (source.readableEnded) pt.end();
  else source.pipe(pt);
  return { bytes, stream: pt };
}
