import { PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { type ByteString, fromByteString } from "./byte-string.js";
import { FormatError } from "./errors.js";
import { cleanEntryName, formatPaxTime, type TarHeader, type TarType } from "./tar-header.js";
import { type RawTarHeader, readRawTar } from "./tar-reader.js";

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
  clean: ByteString;
  body: AsyncIterable<Uint8Array>;
}

/**
 * Decompresses (when gzip) and parses a tar stream into entries with Go-style headers.
 * Every error of reading the input (the source's reads, gunzip, the tar structure) comes
 * out as a FormatError naming the cause, made where it happens; other errors pass as they are.
 */
export async function* readTarEntries(source: Readable): AsyncGenerator<InputEntry> {
  try {
    const head = await peek(source, 512);
    const kind = sniff(head.bytes);
    let stream: Readable = head.stream;
    if (kind === "gzip") {
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      stream.on("error", (e) => gunzip.destroy(e));
      stream = stream.pipe(gunzip);
    }
    for await (const entry of readRawTar(inputChunks(stream, kind === "gzip"))) {
      const header = toHeader(entry.header);
      yield { header, clean: cleanEntryName(header.name), body: entry.body };
    }
  } finally {
    source.destroy();
  }
}

/** The input's chunks; a read or gunzip error becomes a FormatError here, where it is met. */
async function* inputChunks(stream: Readable, gzip: boolean): AsyncGenerator<Uint8Array> {
  const it = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        throw readError(e, gzip);
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    stream.destroy();
  }
}

/** A system error of the source's reads, or a zlib error (by its code) of gunzip. */
function readError(e: unknown, gzip: boolean): unknown {
  if (e instanceof FormatError) return e;
  if (isSystemError(e))
    return new FormatError(`cannot read the input: ${describeSystemError(e)}`, { cause: e });
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (gzip && typeof code === "string" && code.startsWith("Z_")) {
    const msg = (e as Error).message;
    return code === "Z_BUF_ERROR"
      ? new FormatError(`truncated input (${msg})`, { cause: e })
      : new FormatError(`corrupted gzip data (${msg})`, { cause: e });
  }
  return e;
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

/** Type flag byte -> the type written back ('\0' and '7' are regular files, as in Go). */
const TYPES = new Map<number, TarType>([
  [0x00, "0"],
  [0x30, "0"],
  [0x37, "0"],
  [0x31, "1"],
  [0x32, "2"],
  [0x33, "3"],
  [0x34, "4"],
  [0x35, "5"],
  [0x36, "6"],
]);

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

/** Raw header fields -> the Go-style header (PAX records applied); refuses unsupported types. */
export function toHeader(h: RawTarHeader): TarHeader {
  const type = TYPES.get(h.typeflag);
  if (!type) {
    // e.g. 'S' (old GNU sparse), 'V', 'M': the reference refuses them too.
    const flag = String.fromCharCode(h.typeflag);
    throw new FormatError(
      `unsupported input tar entry type '${flag}' for ${JSON.stringify(fromByteString(h.name))}`,
    );
  }
  const pax = h.pax;
  const header: TarHeader = {
    name: h.name,
    type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size: type === "0" ? h.size : 0,
    mtimeSec: h.mtime,
    mtimeNsec: 0,
    linkname: h.linkname,
    uname: h.uname,
    gname: h.gname,
    devmajor: h.devmajor,
    devminor: h.devminor,
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
      const v = pax.get(k);
      if (v !== undefined && k !== "atime" && k !== "ctime") header.paxBasic.set(k, v);
    }
    const int = (k: string): number | undefined => {
      const v = pax.get(k);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0)
        throw new FormatError(
          `invalid PAX ${k} ${JSON.stringify(v)} for ${JSON.stringify(fromByteString(h.name))}`,
        );
      return n;
    };
    header.uid = int("uid") ?? header.uid;
    header.gid = int("gid") ?? header.gid;
    const uname = pax.get("uname");
    const gname = pax.get("gname");
    if (uname !== undefined) header.uname = uname;
    if (gname !== undefined) header.gname = gname;
    const mtime = pax.get("mtime");
    if (mtime !== undefined) [header.mtimeSec, header.mtimeNsec] = parsePaxTime(mtime, h.name);
    for (const k of ["atime", "ctime"]) {
      const v = pax.get(k);
      if (v !== undefined) {
        const [s, ns] = parsePaxTime(v, h.name);
        header.paxExtra.set(k, formatPaxTime(s, ns) as ByteString);
      }
    }
    for (const [k, v] of pax) {
      if (k.startsWith("SCHILY.xattr.")) header.xattrs.set(k.slice(13) as ByteString, v);
      else if (k.startsWith("GNU.sparse."))
        throw new FormatError(
          `sparse files are not supported: ${JSON.stringify(fromByteString(h.name))}`,
        );
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
  try {
    for await (const c of source.iterator({ destroyOnReturn: false })) {
      chunks.push(c as Buffer);
      len += (c as Buffer).length;
      if (len >= n) break;
    }
  } catch (e) {
    throw readError(e, false);
  }
  const bytes = Buffer.concat(chunks);
  const pt = new PassThrough({ highWaterMark: 1 << 20 });
  pt.write(bytes);
  source.on("error", (e) => pt.destroy(e));
  if (source.readableEnded) pt.end();
  else source.pipe(pt);
  return { bytes, stream: pt };
}
