/**
 * Tar header encoding following Go's archive/tar Writer (which the reference uses to
 * re-encode every header): USTAR when every field fits, PAX otherwise; PAX records sorted;
 * zero-padded octal numbers; 6-digit checksum + NUL + space.
 * All names and values are byte strings (one char per byte, see byte-string.ts).
 */
import type { ByteString } from "./byte-string.js";

export type TarType = "0" | "1" | "2" | "3" | "4" | "5" | "6";

export interface TarHeader {
  name: ByteString;
  type: TarType;
  /** The raw mode field (may carry file-type bits, as the reference keeps them). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  linkname: ByteString;
  uname: ByteString;
  gname: ByteString;
  devmajor: number;
  devminor: number;
  /** xattr name -> raw value, both byte strings. */
  xattrs: Map<ByteString, ByteString>;
  /** Other PAX records of the input to carry over (atime, ctime, vendor keys). */
  paxExtra: Map<string, ByteString>;
  /** The input header used PAX: output is PAX too and sub-second times are kept (Go keeps Format). */
  keepSubsecond: boolean;
  /** The input header was GNU format: Go writes GNU again (././@LongLink, base-256). */
  gnu?: boolean;
  /** The input's basic PAX records (path, uid, ...): Go re-emits those equal to the header. */
  paxBasic?: Map<string, ByteString>;
  /** GNU header access/change times (seconds), when the input had them. */
  gnuAtime?: number;
  gnuCtime?: number;
}

export const BLOCK = 512;
const NAME_SIZE = 100;
const PREFIX_SIZE = 155;

export function emptyHeader(name: ByteString, type: TarType): TarHeader {
  return {
    name,
    type,
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeSec: 0,
    mtimeNsec: 0,
    linkname: "" as ByteString,
    uname: "" as ByteString,
    gname: "" as ByteString,
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    paxExtra: new Map(),
    keepSubsecond: false,
  };
}

const isASCII = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
};
/** Go's toASCII: drops NUL and every non-ASCII byte. */
const toASCII = (s: string): string => {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0 && c < 0x80) out += s[i];
  }
  return out;
};
const fitsOctal = (width: number, x: number): boolean =>
  x >= 0 && (width >= 22 || x < 2 ** ((width - 1) * 3));

function splitUSTARPath(name: string): [string, string] | undefined {
  let length = name.length;
  if (length <= NAME_SIZE || !isASCII(name)) return undefined;
  if (length > PREFIX_SIZE + 1) length = PREFIX_SIZE + 1;
  else if (name[length - 1] === "/") length--;
  const i = name.slice(0, length).lastIndexOf("/");
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > NAME_SIZE || nlen === 0 || i > PREFIX_SIZE) return undefined;
  return [name.slice(0, i), name.slice(i + 1)];
}

export function formatPaxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  let sign = "";
  if (sec < 0) {
    sign = "-";
    sec = -(sec + 1);
    nsec = 1e9 - nsec;
  }
  return `${sign}${sec}.${String(nsec).padStart(9, "0")}`.replace(/0+$/, "");
}

/** Encodes the header blocks (PAX extended header first when needed) for one entry. */
export function encodeHeader(h: TarHeader): Buffer {
  const pax = new Map<string, string>();
  let ustarOK = true;
  const str = (s: string, size: number, key: string | null): void => {
    const tooLong = s.length > size;
    if (!isASCII(s) || tooLong) {
      if (key !== "path" || !splitUSTARPath(s)) ustarOK = false;
      if (key) pax.set(key, s);
    }
  };
  const num = (n: number, size: number, key: string | null): void => {
    if (!fitsOctal(size, n)) {
      ustarOK = false;
      if (key) pax.set(key, String(n));
    }
  };
  str(h.name, NAME_SIZE, "path");
  str(h.linkname, NAME_SIZE, "linkpath");
  str(h.uname, 32, "uname");
  str(h.gname, 32, "gname");
  num(h.mode, 8, null);
  num(h.uid, 8, "uid");
  num(h.gid, 8, "gid");
  num(h.size, 12, "size");
  num(h.devmajor, 8, null);
  num(h.devminor, 8, null);
  const nsec = h.keepSubsecond ? h.mtimeNsec : 0;
  let sec = h.mtimeSec;
  if (!h.keepSubsecond && h.mtimeNsec >= 5e8) sec += 1; // Go rounds to the second
  if (!fitsOctal(12, sec) || nsec !== 0) {
    if (!fitsOctal(12, sec)) ustarOK = false;
    pax.set("mtime", formatPaxTime(sec, nsec));
  }
  if (h.paxBasic) {
    const current: Record<string, string> = {
      path: h.name,
      linkpath: h.linkname,
      uname: h.uname,
      gname: h.gname,
      size: String(h.size),
      uid: String(h.uid),
      gid: String(h.gid),
      mtime: formatPaxTime(sec, nsec),
    };
    for (const [k, v] of h.paxBasic) if (!pax.has(k) && current[k] === v) pax.set(k, v);
  }
  for (const [k, v] of h.paxExtra) if (!pax.has(k)) pax.set(k, v);
  for (const [k, v] of h.xattrs) pax.set(`SCHILY.xattr.${k}`, v);
  if (
    h.gnu &&
    !h.keepSubsecond &&
    h.xattrs.size === 0 &&
    h.paxExtra.size === 0 &&
    gnuCanEncode(h)
  ) {
    return encodeGnu(h, sec);
  }
  // Go keeps an input header's PAX format (any PAX record forces PAX on output).
  if (h.paxExtra.size > 0 || h.xattrs.size > 0 || h.keepSubsecond) ustarOK = false;

  if (ustarOK) {
    const split = splitUSTARPath(h.name);
    const blk = template(h, split ? split[1] : h.name, sec, false);
    if (split) writeString(blk, 345, PREFIX_SIZE, split[0]);
    return finish(blk);
  }
  // Go writes no extended header when no record is needed, only a PAX-format main block.
  if (pax.size === 0) return finish(template(h, h.name, sec, true));
  const keys = [...pax.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let data = "";
  for (const k of keys) data += paxRecord(k, pax.get(k) as string);
  const paxName = paxHeaderName(h.name);
  const phBlk = Buffer.alloc(BLOCK);
  writeString(phBlk, 0, NAME_SIZE, toASCII(paxName).slice(0, NAME_SIZE).replace(/\/+$/, ""));
  writeOctal(phBlk, 100, 8, 0);
  writeOctal(phBlk, 108, 8, 0);
  writeOctal(phBlk, 116, 8, 0);
  writeOctal(phBlk, 124, 12, data.length);
  writeOctal(phBlk, 136, 12, 0);
  phBlk[156] = 0x78; // 'x'
  const dataBuf = Buffer.from(data, "latin1");
  const padded = Buffer.alloc(Math.ceil(dataBuf.length / BLOCK) * BLOCK);
  dataBuf.copy(padded);
  const main = template(h, h.name, sec, true);
  return Buffer.concat([finish(phBlk), padded, finish(main)]);
}

/** GNU can hold long names (././@LongLink) and big numbers, not long user names or NULs. */
function gnuCanEncode(h: TarHeader): boolean {
  const nul = (x: string) => x.includes("\0");
  return h.uname.length <= 32 && h.gname.length <= 32 && !nul(h.name) && !nul(h.linkname);
}

/** Go's writeGNUHeader: long names and link names as ././@LongLink entries. */
function encodeGnu(h: TarHeader, sec: number): Buffer {
  const parts: Buffer[] = [];
  const longLink = (data: string, flag: string): void => {
    const blk = Buffer.alloc(BLOCK);
    writeString(blk, 0, NAME_SIZE, "././@LongLink");
    writeOctal(blk, 100, 8, 0);
    writeOctal(blk, 108, 8, 0);
    writeOctal(blk, 116, 8, 0);
    writeOctal(blk, 124, 12, data.length);
    writeOctal(blk, 136, 12, 0);
    blk[156] = flag.charCodeAt(0);
    parts.push(finish(blk, true), padTo(Buffer.from(data, "latin1")));
  };
  if (h.name.length > NAME_SIZE) longLink(`${h.name}\0`, "L");
  if (h.linkname.length > NAME_SIZE) longLink(`${h.linkname}\0`, "K");
  const blk = Buffer.alloc(BLOCK);
  blk[156] = h.type.charCodeAt(0);
  writeString(blk, 0, NAME_SIZE, h.name);
  writeString(blk, 157, NAME_SIZE, h.linkname);
  writeNumeric(blk, 100, 8, h.mode);
  writeNumeric(blk, 108, 8, h.uid);
  writeNumeric(blk, 116, 8, h.gid);
  writeNumeric(blk, 124, 12, h.size);
  writeNumeric(blk, 136, 12, sec);
  writeString(blk, 265, 32, h.uname);
  writeString(blk, 297, 32, h.gname);
  writeNumeric(blk, 329, 8, h.devmajor);
  writeNumeric(blk, 337, 8, h.devminor);
  if (h.gnuAtime) writeNumeric(blk, 345, 12, h.gnuAtime);
  if (h.gnuCtime) writeNumeric(blk, 357, 12, h.gnuCtime);
  parts.push(finish(blk, true));
  return Buffer.concat(parts);
}

function padTo(data: Buffer): Buffer {
  const out = Buffer.alloc(Math.ceil(data.length / BLOCK) * BLOCK);
  data.copy(out);
  return out;
}

/** Go's formatNumeric: octal when it fits, else base-256 (high bit set). */
function writeNumeric(b: Buffer, off: number, size: number, x: number): void {
  if (fitsOctal(size, x)) {
    writeOctal(b, off, size, x);
    return;
  }
  let v = BigInt(x);
  for (let i = size - 1; i >= 0; i--) {
    b[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[off] |= 0x80;
}

function template(h: TarHeader, name: string, sec: number, paxMode: boolean): Buffer {
  const blk = Buffer.alloc(BLOCK);
  const s = (off: number, size: number, v: string): void =>
    writeString(blk, off, size, paxMode ? toASCII(v) : v);
  const n = (off: number, size: number, v: number): void =>
    writeOctal(blk, off, size, fitsOctal(size, v) ? v : 0);
  blk[156] = h.type.charCodeAt(0);
  s(0, NAME_SIZE, name);
  s(157, NAME_SIZE, h.linkname);
  n(100, 8, h.mode);
  n(108, 8, h.uid);
  n(116, 8, h.gid);
  n(124, 12, h.size);
  n(136, 12, sec);
  s(265, 32, h.uname);
  s(297, 32, h.gname);
  n(329, 8, h.devmajor);
  n(337, 8, h.devminor);
  return blk;
}

function finish(blk: Buffer, gnu = false): Buffer {
  blk.write(gnu ? "ustar  \x00" : "ustar\x0000", 257, "latin1");
  blk.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += blk[i];
  writeOctal(blk, 148, 7, sum);
  blk[155] = 0x20;
  return blk;
}

function writeString(b: Buffer, off: number, size: number, s: string): void {
  b.write(s.slice(0, size), off, "latin1");
  if (s.length < size) b[off + s.length] = 0;
  // Go: a truncated name must not end in '/', buggy readers would see a directory.
  if (s.length > size && b[off + size - 1] === 0x2f) {
    const n = s.slice(0, size).replace(/\/+$/, "").length;
    b[off + n] = 0;
  }
}

function writeOctal(b: Buffer, off: number, size: number, x: number): void {
  let s = x.toString(8);
  if (size - s.length - 1 > 0) s = "0".repeat(size - s.length - 1) + s;
  writeString(b, off, size, s);
}

/** A PAX record "LEN key=value\n" where LEN counts itself. */
export function paxRecord(k: string, v: string): string {
  const base = k.length + v.length + 3;
  let size = base + String(base).length;
  let rec = `${size} ${k}=${v}\n`;
  if (rec.length !== size) {
    size = rec.length;
    rec = `${size} ${k}=${v}\n`;
  }
  return rec;
}

/** Go: path.Join(dir, "PaxHeaders.0", file) of path.Split(name). */
function paxHeaderName(name: string): string {
  const i = name.lastIndexOf("/");
  const dir = name.slice(0, i + 1);
  const file = name.slice(i + 1);
  return goPathClean([dir, "PaxHeaders.0", file].filter((x) => x !== "").join("/"));
}

/** Go's path.Clean (of text or of a byte string: the result is of the same kind). */
export function goPathClean<S extends string>(p: S): S {
  if (p === "") return "." as S;
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const s = (rooted ? "/" : "") + out.join("/");
  return (s === "" ? "." : s) as S;
}

/** A name for a one-line message: quoted, and cut in the middle when very long. */
export function quoteName(name: string, max = 160): string {
  const q = JSON.stringify(name);
  if (q.length <= max) return q;
  return `${q.slice(0, max / 2)}…(${name.length} characters)…${q.slice(-max / 2)}`;
}

/** The reference's cleanEntryName: path.Clean("/" + name) without the leading "/". */
export function cleanEntryName<S extends string>(name: S): S {
  return goPathClean(`/${name}`).slice(1) as S;
}

/** Bytes of zero padding after a payload of `size` bytes. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
