import { FormatError, LimitError } from "./errors.js";
import { KEY_ORDER } from "./toc.js";

/**
 * A one-pass scanner of TOC JSON bytes. It accepts exactly what `JSON.parse` accepts and
 * applies the entry validation of `parseToc`, but builds no object per entry: each entry
 * is read into one reused `EntryScratch` (numbers, and byte ranges of strings inside the
 * JSON) and handed to a sink (the index builder, toc-build.ts). Strings are decoded only
 * when the caller asks. It knows JSON and TOC entries, nothing of the tree built from them.
 *
 * Performance contract (this file, toc-key.ts, toc-tables.ts, toc-build.ts): opening a TOC
 * in a fresh process (gunzip, sha256, scan, validation, index, one lookup) costs about the
 * CPU of the same open with `JSON.parse` + `parseToc` and a linear find (25k entries: ratio
 * ~1.0; TOCs of a few thousand entries, scanned mostly by V8's interpreter while JSON.parse
 * is native: ~2.5, some 25 ms), in a third less memory and half the page faults, and it
 * leaves a tree ready for lookups where JSON.parse leaves only objects. `node
 * bench/toc-open.mjs` prints that ratio: a change that moves it past noise is a regression.
 * The code is written for V8 as a CLI meets it; these are the reasons behind its shape,
 * settled (do not tune further against them):
 * - Most of one open runs before V8 has optimized anything: the first thousands of entries
 *   are interpreted. Hot functions are kept small (optimized sooner), and the usual path's
 *   loops are written in place (whitespace, plain keys, plain integers and strings, the
 *   digest check) rather than in small helpers: a helper with a loop is compiled on its own
 *   first, then again when inlined.
 * - An operation first met after a function is optimized (a store only a rare entry makes,
 *   a key first seen late) sends the code back to the interpreter and it is compiled again.
 *   So fields live in small typed arrays indexed by key id (one store path for every key)
 *   and the index writes every field of every entry, zeros included, evaluates the
 *   "replaces a directory" check for every entry (on the root for a new key) and finds side
 *   keys branch-free.
 * - Only small integers in hot loops (the key hash keeps 24 bits): no heap numbers.
 * - Over-sized typed arrays cost zeroed pages and V8's external-memory scavenges: tables are
 *   sized at one node per 192 bytes of JSON and grown by doubling.
 */

/** Entry type codes (0: none). */
export const T_DIR = 1;
export const T_REG = 2;
export const T_SYMLINK = 3;
export const T_HARDLINK = 4;
export const T_CHAR = 5;
export const T_BLOCK = 6;
export const T_FIFO = 7;
export const T_CHUNK = 8;
export const TYPE_NAMES = [
  "",
  "dir",
  "reg",
  "symlink",
  "hardlink",
  "char",
  "block",
  "fifo",
  "chunk",
] as const;
const TYPE_CODES = new Map<string, number>(TYPE_NAMES.map((t, i) => [t, i]));
const TYPE_BYTES = TYPE_NAMES.map((t) => Buffer.from(t, "latin1"));
TYPE_CODES.delete("");

/** String flags: the string holds escapes (decode with JSON.parse); it holds non-ASCII bytes. */
export const S_ESCAPED = 1;
export const S_NONASCII = 2;
/**
 * Byte classes inside a JSON string: 0 plain ASCII, 1 the closing quote, 2 a backslash, 3 a
 * control byte (invalid), 4 non-ASCII. One table load per byte keeps the loop short while V8
 * still interprets it.
 */
export const STR_CLASS = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STR_CLASS[c] = 3;
STR_CLASS[0x22] = 1;
STR_CLASS[0x5c] = 2;
for (let c = 0x80; c < 0x100; c++) STR_CLASS[c] = 4;
/** 1 for the bytes of lowercase hex. */
const HEX = new Uint8Array(256);
for (const c of Buffer.from("0123456789abcdef", "latin1")) HEX[c] = 1;
/** Bits of EntryScratch.checked: the digest / chunkDigest was read as a valid sha256 digest. */
const DIGEST_OK = 1;
const CHUNK_DIGEST_OK = 2;
/** A string field's start when the value is present but not a string. */
const NOT_STRING = -2;
/** A number field's value when the value is not a non-negative safe integer. */
const BAD_NUMBER = -1;
/** xattrsS when a value of the xattrs object is not a string. */
const BAD_XATTR = -3;

// Key ids (positions in the scratch arrays).
export const K_NAME = 1;
const K_TYPE = 2;
export const K_SIZE = 3;
const K_MODTIME = 4;
const K_LINKNAME = 5;
const K_MODE = 6;
export const K_UID = 7;
export const K_GID = 8;
export const K_USERNAME = 9;
export const K_GROUPNAME = 10;
export const K_OFFSET = 11;
export const K_INNEROFFSET = 12;
const K_DEVMAJOR = 13;
const K_DEVMINOR = 14;
const K_XATTRS = 15;
const K_DIGEST = 16;
export const K_CHUNKOFFSET = 17;
export const K_CHUNKSIZE = 18;
export const K_CHUNKDIGEST = 19;
// Key ids are positions in the Go field order (0: not a TOCEntry key).
const KEY_NAMES: readonly string[] = ["", ...KEY_ORDER];
const KEY_IDS = new Map<string, number>(KEY_NAMES.map((k, i) => [k, i]));
KEY_IDS.delete("");
/** Candidate keys by byte length, as byte arrays. */
const KEYS_BY_LENGTH: { id: number; bytes: Uint8Array }[][] = [];
for (let id = 1; id < KEY_NAMES.length; id++) {
  const bytes = Buffer.from(KEY_NAMES[id], "latin1");
  KEYS_BY_LENGTH[bytes.length] ??= [];
  KEYS_BY_LENGTH[bytes.length].push({ id, bytes });
}
/** Candidate keys by first byte (plain keys are matched in place, without a string scan). */
const KEYS_BY_FIRST: { id: number; bytes: Uint8Array }[][] = [];
for (let id = 1; id < KEY_NAMES.length; id++) {
  const bytes = Buffer.from(KEY_NAMES[id], "latin1");
  KEYS_BY_FIRST[bytes[0]] ??= [];
  KEYS_BY_FIRST[bytes[0]].push({ id, bytes });
}
/** 1 for the ids of number keys. */
const NUMBER_KEY = new Uint8Array(KEY_NAMES.length);
const NUMBER_KEY_ORDER = [
  K_SIZE,
  K_MODE,
  K_UID,
  K_GID,
  K_OFFSET,
  K_INNEROFFSET,
  K_DEVMAJOR,
  K_DEVMINOR,
  K_CHUNKOFFSET,
  K_CHUNKSIZE,
];
for (const id of NUMBER_KEY_ORDER) NUMBER_KEY[id] = 1;

/**
 * One entry as scanned: numbers (0 when absent) and string ranges [S, E) in the bytes, with
 * flags F. Fields live in small typed arrays indexed by key id, so the scan stores every
 * number (and every string) through one code path, whatever keys a TOC uses and in what
 * order: a key first seen late in a TOC does not send optimized code back to the
 * interpreter. The named getters read them.
 */
export class EntryScratch {
  /** Byte range of the entry's JSON object. */
  start = 0;
  end = 0;
  /** Type code; 0 when absent or unknown (see typeS). */
  type = 0;
  /** Numbers by key id. */
  readonly num = new Float64Array(KEY_NAMES.length);
  /** String ranges and flags by key id (strS: -1 absent for name and type, NOT_STRING). */
  readonly strS = new Int32Array(KEY_NAMES.length);
  readonly strE = new Int32Array(KEY_NAMES.length);
  readonly strF = new Int32Array(KEY_NAMES.length);
  /** Byte range of the xattrs object; xattrsS < 0: absent or null; NOT_STRING: not an object. */
  xattrsS = -1;
  xattrsE = 0;
  /** DIGEST_OK | CHUNK_DIGEST_OK: those fields were already checked while scanned. */
  checked = 0;
  /**
   * Nonzero when a field may fail validation (not a string, not a non-negative integer, an
   * unchecked digest, odd xattrs): only then does `validate` look at every field.
   */
  bad = 0;
  reset(start: number): void {
    this.start = start;
    this.end = 0;
    this.type = 0;
    this.num.fill(0);
    this.strS.fill(0);
    this.strE.fill(0);
    this.strF.fill(0);
    this.strS[K_NAME] = -1;
    this.strS[K_TYPE] = -1;
    this.xattrsS = -1;
    this.xattrsE = 0;
    this.checked = 0;
    this.bad = 0;
  }

  get size(): number {
    return this.num[K_SIZE];
  }
  get mode(): number {
    return this.num[K_MODE];
  }
  get uid(): number {
    return this.num[K_UID];
  }
  get gid(): number {
    return this.num[K_GID];
  }
  get offset(): number {
    return this.num[K_OFFSET];
  }
  get innerOffset(): number {
    return this.num[K_INNEROFFSET];
  }
  get devMajor(): number {
    return this.num[K_DEVMAJOR];
  }
  get devMinor(): number {
    return this.num[K_DEVMINOR];
  }
  get chunkOffset(): number {
    return this.num[K_CHUNKOFFSET];
  }
  get chunkSize(): number {
    return this.num[K_CHUNKSIZE];
  }
  get typeS(): number {
    return this.strS[K_TYPE];
  }
  get typeE(): number {
    return this.strE[K_TYPE];
  }
  get typeF(): number {
    return this.strF[K_TYPE];
  }
  get nameS(): number {
    return this.strS[K_NAME];
  }
  get nameE(): number {
    return this.strE[K_NAME];
  }
  get nameF(): number {
    return this.strF[K_NAME];
  }
  get modtimeS(): number {
    return this.strS[K_MODTIME];
  }
  get modtimeE(): number {
    return this.strE[K_MODTIME];
  }
  get modtimeF(): number {
    return this.strF[K_MODTIME];
  }
  get linkNameS(): number {
    return this.strS[K_LINKNAME];
  }
  get linkNameE(): number {
    return this.strE[K_LINKNAME];
  }
  get linkNameF(): number {
    return this.strF[K_LINKNAME];
  }
  get userNameS(): number {
    return this.strS[K_USERNAME];
  }
  get userNameE(): number {
    return this.strE[K_USERNAME];
  }
  get userNameF(): number {
    return this.strF[K_USERNAME];
  }
  get groupNameS(): number {
    return this.strS[K_GROUPNAME];
  }
  get groupNameE(): number {
    return this.strE[K_GROUPNAME];
  }
  get groupNameF(): number {
    return this.strF[K_GROUPNAME];
  }
  get digestS(): number {
    return this.strS[K_DIGEST];
  }
  get digestE(): number {
    return this.strE[K_DIGEST];
  }
  get digestF(): number {
    return this.strF[K_DIGEST];
  }
  get chunkDigestS(): number {
    return this.strS[K_CHUNKDIGEST];
  }
  get chunkDigestE(): number {
    return this.strE[K_CHUNKDIGEST];
  }
  get chunkDigestF(): number {
    return this.strF[K_CHUNKDIGEST];
  }
}

/** Receives each entry as it is scanned (index counts every entry, chunks included). */
export interface EntrySink {
  entry(e: EntryScratch, index: number): void;
  /** Reads the entries' names in the scanner's pass (the index learns its keys there). */
  readonly names: NameReader;
}

/**
 * Reads a name string, whose contents start at `s`, as far as it is plain ASCII (STR_CLASS
 * 0), and returns where it stopped: the closing quote, or a byte the scanner then reads the
 * whole string again for.
 */
export interface NameReader {
  read(bytes: Buffer, s: number): number;
}

/** The plain read: what a sink that wants nothing of the names gives. */
export const PLAIN_NAMES: NameReader = {
  read(bytes: Buffer, s: number): number {
    let q = s;
    while (STR_CLASS[bytes[q]] === 0) q++;
    return q;
  },
};

export interface ScanLimits {
  /** Entries beyond this many are refused before anything is built for them. */
  maxEntries: number;
}

/** Decodes the JSON string whose contents are bytes[s, e) with flags f. */
export function decodeString(bytes: Buffer, s: number, e: number, f: number): string {
  if (e <= s) return "";
  if (f & S_ESCAPED) return JSON.parse(bytes.toString("utf8", s - 1, e + 1)) as string;
  return bytes.toString(f & S_NONASCII ? "utf8" : "latin1", s, e);
}

class JsonError extends Error {}

/**
 * Scans TOC JSON. For each entries array, `newSink()` gives the receiver (a second
 * "entries" key replaces the first, as JSON.parse's last-wins does); returns the sink of
 * the array that counts, or undefined for absent/null entries. Errors are FormatErrors in
 * the order parseToc reports them: JSON syntax, then version, then the entries array, then
 * the first bad entry.
 */
export function scanToc<S extends EntrySink>(
  bytes: Buffer,
  newSink: () => S,
  limits: ScanLimits,
): S | undefined {
  const sc = new Scanner(bytes, limits);
  try {
    return sc.document(newSink);
  } catch (e) {
    if (e instanceof JsonError) throw new FormatError(`TOC is not valid JSON (${e.message})`);
    throw e;
  }
}

/** Scans the one entry object at `start` (already validated by a full scan). */
export function rescanEntry(bytes: Buffer, start: number, into: EntryScratch): void {
  const sc = new Scanner(bytes, { maxEntries: Number.MAX_SAFE_INTEGER });
  sc.entryObject(start, into);
}

/**
 * Counts the entries of a TOC without building anything: a cheap first look at a TOC too
 * large to hold `maxEntries` small ones, so an oversized TOC is refused before it costs
 * memory. Returns a lower bound (exact for well-formed TOCs with one entries array).
 */
export function countEntries(bytes: Uint8Array): number {
  // Entry objects are the objects at depth 2 (inside the top object's array).
  let depth = 0;
  let count = 0;
  const n = bytes.length;
  for (let p = 0; p < n; p++) {
    const c = bytes[p];
    if (c === 0x22) {
      for (p++; p < n; p++) {
        const d = bytes[p];
        if (d === 0x22) break;
        if (d === 0x5c) p++;
      }
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 3 && c === 0x7b) count++;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return count;
}

class Scanner {
  private readonly b: Buffer;
  private readonly n: number;
  /** Flags of the string last scanned. */
  private sf = 0;
  /** Value of the number last scanned (BAD_NUMBER unless a non-negative safe integer). */
  private num = 0;
  /** Stack for skipping nested values. */
  private stack = new Uint8Array(64);
  /** The name reader of the entries array being scanned. */
  private names: NameReader = PLAIN_NAMES;

  constructor(
    bytes: Buffer,
    private readonly limits: ScanLimits,
  ) {
    this.b = bytes;
    this.n = bytes.length;
  }

  private fail(p: number, what?: string): never {
    if (p >= this.n) throw new JsonError("unexpected end of input");
    throw new JsonError(
      `${what ?? "unexpected"} byte 0x${this.b[p].toString(16).padStart(2, "0")} at offset ${p}`,
    );
  }

  private ws(p: number): number {
    const b = this.b;
    const n = this.n;
    while (p < n) {
      const c = b[p];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      p++;
    }
    return p;
  }

  /** p at the opening quote; returns the index of the closing quote; sets this.sf. */
  private str(p: number): number {
    const b = this.b;
    const n = this.n;
    let f = 0;
    p++;
    for (;;) {
      // Past the end, b[p] is undefined and so is its class: the loop stops there too.
      while (STR_CLASS[b[p]] === 0) p++;
      if (p >= n) this.fail(p);
      const c = b[p];
      if (c === 0x22) break;
      if (c === 0x5c) {
        f |= S_ESCAPED;
        const d = b[p + 1];
        if (d === 0x75) {
          for (let k = 2; k < 6; k++) {
            const h = b[p + k];
            if (!((h >= 0x30 && h <= 0x39) || (h >= 0x61 && h <= 0x66) || (h >= 0x41 && h <= 0x46)))
              this.fail(p + k, "bad \\u escape");
          }
          p += 6;
        } else if (
          d === 0x22 ||
          d === 0x5c ||
          d === 0x2f ||
          d === 0x62 ||
          d === 0x66 ||
          d === 0x6e ||
          d === 0x72 ||
          d === 0x74
        ) {
          p += 2;
        } else this.fail(p + 1, "bad escape");
        continue;
      }
      if (c < 0x20) this.fail(p, "control");
      if (c >= 0x80) f |= S_NONASCII;
      p++;
    }
    this.sf = f;
    return p;
  }

  /** A JSON number at p; returns its end; sets this.num. */
  private number(p: number): number {
    const b = this.b;
    const start = p;
    let simple = true;
    if (b[p] === 0x2d) {
      simple = false;
      p++;
    }
    let c = b[p];
    let v = 0;
    if (c === 0x30) p++;
    else if (c >= 0x31 && c <= 0x39) {
      do {
        v = v * 10 + (c - 0x30);
        c = b[++p];
      } while (c >= 0x30 && c <= 0x39);
    } else this.fail(p);
    if (b[p] === 0x2e) {
      simple = false;
      p++;
      if (!(b[p] >= 0x30 && b[p] <= 0x39)) this.fail(p);
      while (b[p] >= 0x30 && b[p] <= 0x39) p++;
    }
    c = b[p];
    if (c === 0x65 || c === 0x45) {
      simple = false;
      p++;
      if (b[p] === 0x2b || b[p] === 0x2d) p++;
      if (!(b[p] >= 0x30 && b[p] <= 0x39)) this.fail(p);
      while (b[p] >= 0x30 && b[p] <= 0x39) p++;
    }
    if (!simple || p - start > 15) v = Number(b.toString("latin1", start, p));
    this.num = Number.isSafeInteger(v) && v >= 0 ? v + 0 : BAD_NUMBER;
    return p;
  }

  private literal(p: number, word: string): number {
    for (let k = 0; k < word.length; k++)
      if (this.b[p + k] !== word.charCodeAt(k)) this.fail(p + k);
    return p + word.length;
  }

  /** Skips any JSON value at p (validating it); returns its end. */
  private skip(p: number): number {
    const b = this.b;
    let depth = 0;
    for (;;) {
      p = this.ws(p);
      const c = b[p];
      // A value.
      if (c === 0x7b || c === 0x5b) {
        if (depth === this.stack.length) {
          const s = new Uint8Array(depth * 2);
          s.set(this.stack);
          this.stack = s;
        }
        this.stack[depth++] = c;
        p = this.ws(p + 1);
        if (b[p] === (c === 0x7b ? 0x7d : 0x5d)) {
          depth--;
          p++;
        } else {
          if (c === 0x7b) p = this.key(p);
          continue;
        }
      } else if (c === 0x22) p = this.str(p) + 1;
      else if (c === 0x74) p = this.literal(p, "true");
      else if (c === 0x66) p = this.literal(p, "false");
      else if (c === 0x6e) p = this.literal(p, "null");
      else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) p = this.number(p);
      else this.fail(p);
      // After a value: close containers or go to the next member.
      for (;;) {
        if (depth === 0) return p;
        p = this.ws(p);
        const top = this.stack[depth - 1];
        if (b[p] === 0x2c) {
          p++;
          if (top === 0x7b) p = this.key(this.ws(p));
          break;
        }
        if (b[p] === (top === 0x7b ? 0x7d : 0x5d)) {
          depth--;
          p++;
          continue;
        }
        this.fail(p);
      }
    }
  }

  /** An object key at p and its colon; returns the position after the colon. */
  private key(p: number): number {
    if (this.b[p] !== 0x22) this.fail(p);
    p = this.ws(this.str(p) + 1);
    if (this.b[p] !== 0x3a) this.fail(p);
    return p + 1;
  }

  /** The id of the key whose bytes are [s, e), or 0. */
  private keyId(s: number, e: number): number {
    if (this.sf & S_ESCAPED) return KEY_IDS.get(decodeString(this.b, s, e, this.sf)) ?? 0;
    const cands = KEYS_BY_LENGTH[e - s];
    if (cands === undefined) return 0;
    const b = this.b;
    for (let k = 0; k < cands.length; k++) {
      const kb = cands[k].bytes;
      let i = 0;
      while (i < kb.length && b[s + i] === kb[i]) i++;
      if (i === kb.length) return cands[k].id;
    }
    return 0;
  }

  document<S extends EntrySink>(newSink: () => S): S | undefined {
    const b = this.b;
    let p = this.ws(0);
    if (p >= this.n) this.fail(p);
    if (b[p] !== 0x7b) {
      // Valid JSON first (a syntax error is reported as such), then the shape.
      if (this.ws(this.skip(p)) < this.n) this.fail(this.ws(this.skip(p)));
      throw new FormatError("TOC is not a JSON object");
    }
    let version = Number.NaN;
    let sink: S | undefined;
    let entriesError: Error | undefined;
    p = this.ws(p + 1);
    if (b[p] === 0x7d) p++;
    else {
      for (;;) {
        if (b[p] !== 0x22) this.fail(p);
        const ks = p + 1;
        const ke = this.str(p);
        const id = this.keyIdTop(ks, ke);
        p = this.ws(ke + 1);
        if (b[p] !== 0x3a) this.fail(p);
        p = this.ws(p + 1);
        if (id === 1) {
          // version
          if (b[p] === 0x2d || (b[p] >= 0x30 && b[p] <= 0x39)) {
            const s = p;
            p = this.number(p);
            version = Number(b.toString("latin1", s, p));
          } else {
            version = Number.NaN;
            p = this.skip(p);
          }
        } else if (id === 2) {
          // entries: last one wins, as with JSON.parse
          entriesError = undefined;
          sink = undefined;
          if (b[p] === 0x5b) {
            sink = newSink();
            try {
              p = this.entries(p, sink);
            } catch (e) {
              if (!(e instanceof FormatError) || e instanceof LimitError) throw e;
              entriesError = e; // reported after the rest is known to be valid JSON
              p = this.skipFromInsideArray(e);
            }
          } else if (b[p] === 0x6e) p = this.literal(p, "null");
          else {
            p = this.skip(p);
            entriesError = new FormatError("TOC entries is not an array");
          }
        } else p = this.skip(p);
        p = this.ws(p);
        if (b[p] === 0x2c) {
          p = this.ws(p + 1);
          continue;
        }
        if (b[p] === 0x7d) {
          p++;
          break;
        }
        this.fail(p);
      }
    }
    p = this.ws(p);
    if (p < this.n) this.fail(p);
    if (version !== 1)
      throw new FormatError(
        `unsupported TOC version ${Number.isNaN(version) ? "(not a number)" : JSON.stringify(version)}`,
      );
    if (entriesError) throw entriesError;
    return sink;
  }

  /** Where the scan of a failed entries array resumes: the array's start, skipped whole. */
  private failedArrayStart = 0;
  private skipFromInsideArray(_e: unknown): number {
    return this.skip(this.failedArrayStart);
  }

  private keyIdTop(s: number, e: number): number {
    const k = this.sf & S_ESCAPED ? decodeString(this.b, s, e, this.sf) : undefined;
    const is = (word: string) =>
      k !== undefined
        ? k === word
        : e - s === word.length && this.b.toString("latin1", s, e) === word;
    return is("version") ? 1 : is("entries") ? 2 : 0;
  }

  /** The entries array at p; returns its end. */
  private entries(p: number, sink: EntrySink): number {
    const b = this.b;
    this.names = sink.names;
    this.failedArrayStart = p;
    const e = new EntryScratch();
    const max = this.limits.maxEntries;
    let index = 0;
    p = this.ws(p + 1);
    if (b[p] === 0x5d) return p + 1;
    for (;;) {
      if (index >= max) throw new LimitError(`TOC has more than ${max} entries (the limit)`);
      if (b[p] !== 0x7b) {
        // Not an object: valid JSON is still required before the entry error counts.
        this.skip(p);
        throw new FormatError(`TOC entry ${index}: not an object`);
      }
      p = this.entryObject(p, e);
      // Every check of validate, done only when the scan saw something that may fail one.
      if (e.bad !== 0 || e.type === 0 || e.strS[K_NAME] < 0) validate(e, index, this.b);
      sink.entry(e, index);
      index++;
      p = this.ws(p);
      if (b[p] === 0x2c) {
        p = this.ws(p + 1);
        continue;
      }
      if (b[p] === 0x5d) return p + 1;
      this.fail(p);
    }
  }

  /** One entry object at p into e; returns its end. */
  entryObject(p: number, e: EntryScratch): number {
    // The usual path's loops written here (see the header). Whitespace the usual layout
    // never has (before a colon or a comma) is skipped by calls that never run there.
    const b = this.b;
    e.reset(p);
    p++;
    for (;;) {
      // Whitespace after "{" or "," (ws, inlined).
      for (let c = b[p]; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = b[++p]);
      if (b[p] !== 0x22) {
        if (b[p] === 0x7d && p === this.ws(e.start + 1)) break; // {}
        this.fail(p);
      }
      // A plain TOCEntry key is matched in place against the few keys with its first
      // byte; any other goes through str and keyId.
      let id = -1;
      const cands = KEYS_BY_FIRST[b[p + 1]];
      if (cands !== undefined) {
        for (let k = 0; k < cands.length && id < 0; k++) {
          const kb = cands[k].bytes;
          const len = kb.length;
          if (b[p + 1 + len] !== 0x22) continue;
          let i = 1;
          while (i < len && b[p + 1 + i] === kb[i]) i++;
          if (i === len) {
            id = cands[k].id;
            p += len + 2;
          }
        }
      }
      if (id < 0) {
        const ke = this.str(p);
        id = this.keyId(p + 1, ke);
        p = ke + 1;
      }
      if (b[p] !== 0x3a) p = this.ws(p);
      if (b[p] !== 0x3a) this.fail(p);
      p++;
      if (b[p] === 0x20) p++;
      if (b[p] <= 0x20) p = this.ws(p);
      p = this.value(id, p, e);
      if (b[p] !== 0x2c && b[p] !== 0x7d) p = this.ws(p);
      if (b[p] === 0x2c) {
        p++;
        continue;
      }
      if (b[p] !== 0x7d) this.fail(p);
      break;
    }
    e.end = p + 1;
    return p + 1;
  }

  /** The value of entry key `id` at p into e; returns its end. */
  private value(id: number, p: number, e: EntryScratch): number {
    // The usual cases' loops are written here, not called: see entryObject.
    const b = this.b;
    const c = b[p];
    if (id === 0) return this.skip(p);
    if (NUMBER_KEY[id] === 1) {
      let v = 0;
      if (c >= 0x31 && c <= 0x39) {
        // A plain non-negative integer (number, inlined): anything else goes to number().
        let q = p;
        let d = c;
        do {
          v = v * 10 + (d - 0x30);
          d = b[++q];
        } while (d >= 0x30 && d <= 0x39);
        if (d === 0x2e || d === 0x65 || d === 0x45 || q - p > 15) {
          p = this.number(p);
          v = this.num;
        } else p = q;
      } else if (c === 0x2d || c === 0x30) {
        p = this.number(p);
        v = this.num;
      } else {
        p = this.skip(p);
        v = BAD_NUMBER;
      }
      if (v < 0) e.bad = 1;
      e.num[id] = v;
      return p;
    }
    if (id === K_XATTRS) return this.xattrsValue(p, e);
    let s = NOT_STRING;
    let end = 0;
    let f = 0;
    let ok = false;
    if (c !== 0x22) {
      p = this.skip(p);
      e.bad = 1;
    } else {
      s = p + 1;
      if ((id === K_DIGEST || id === K_CHUNKDIGEST) && b[p + 72] === 0x22) {
        // The common case, read and checked in one pass: "sha256:<64 lowercase hex>"
        // (isPlainDigest, inlined).
        ok =
          b[s] === 0x73 &&
          b[s + 1] === 0x68 &&
          b[s + 2] === 0x61 &&
          b[s + 3] === 0x32 &&
          b[s + 4] === 0x35 &&
          b[s + 5] === 0x36 &&
          b[s + 6] === 0x3a;
        for (let q = s + 7; q < s + 71 && ok; q++) ok = HEX[b[q]] === 1;
      }
      if (ok) {
        end = p + 72;
        p += 73;
      } else {
        // Plain ASCII runs to the quote (str, inlined; a name through the sink); anything
        // else goes to str().
        let q = s;
        if (id === K_NAME) q = this.names.read(b, s);
        else while (STR_CLASS[b[q]] === 0) q++;
        if (b[q] !== 0x22) {
          q = this.str(p);
          f = this.sf;
        }
        end = q;
        p = q + 1;
        if (id === K_TYPE) e.type = f === 0 ? typeCode(b, s, end) : 0;
        else if (id === K_DIGEST || id === K_CHUNKDIGEST) e.bad = 1; // validate checks it
      }
    }
    e.strS[id] = s;
    e.strE[id] = end;
    e.strF[id] = f;
    // The last value of a key counts (as with JSON.parse): so does its check.
    if (id === K_DIGEST) e.checked = ok ? e.checked | DIGEST_OK : e.checked & ~DIGEST_OK;
    else if (id === K_CHUNKDIGEST)
      e.checked = ok ? e.checked | CHUNK_DIGEST_OK : e.checked & ~CHUNK_DIGEST_OK;
    return p;
  }

  /** An xattrs value at p (rare: validate checks it). */
  private xattrsValue(p: number, e: EntryScratch): number {
    const c = this.b[p];
    e.bad = 1;
    if (c === 0x7b) {
      e.xattrsS = p;
      p = this.xattrs(p);
      e.xattrsE = p;
      if (this.num === BAD_NUMBER) e.xattrsS = BAD_XATTR;
    } else if (c === 0x6e) {
      e.xattrsS = -1;
      p = this.literal(p, "null");
    } else {
      e.xattrsS = NOT_STRING;
      p = this.skip(p);
    }
    return p;
  }

  /** An xattrs object at p; this.num = BAD_NUMBER when a value is not a string. Returns its end. */
  private xattrs(p: number): number {
    const b = this.b;
    p = this.ws(p + 1);
    this.num = 0;
    if (b[p] === 0x7d) return p + 1;
    let bad = false;
    for (;;) {
      p = this.ws(this.key(p));
      if (b[p] === 0x22) p = this.str(p) + 1;
      else {
        p = this.skip(p);
        bad = true;
      }
      p = this.ws(p);
      if (b[p] === 0x2c) {
        p = this.ws(p + 1);
        continue;
      }
      if (b[p] === 0x7d) break;
      this.fail(p);
    }
    this.num = bad ? BAD_NUMBER : 0;
    return p + 1;
  }
}

const SHA256_PREFIX = Buffer.from("sha256:", "latin1");

/** "" or sha256:<64 lowercase hex>. */
function isDigest(b: Buffer, s: number, e: number, f: number): boolean {
  if (e === s) return true;
  if (f & S_ESCAPED) return /^(sha256:[0-9a-f]{64})?$/.test(decodeString(b, s, e, f));
  if (e - s !== 71) return false;
  for (let k = 0; k < 7; k++) if (b[s + k] !== SHA256_PREFIX[k]) return false;
  for (let p = s + 7; p < e; p++) {
    const c = b[p];
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/** parseToc's checks of one entry, on the scanned form. Sets e.type. */
function validate(e: EntryScratch, i: number, b: Buffer): void {
  const bad = (why: string): never => {
    throw new FormatError(`TOC entry ${i}: ${why}`);
  };
  if (e.nameS < 0) bad("name is not a string");
  let type = 0;
  if (e.typeS >= 0) {
    if (e.typeF & S_ESCAPED) type = TYPE_CODES.get(decodeString(b, e.typeS, e.typeE, e.typeF)) ?? 0;
    else type = typeCode(b, e.typeS, e.typeE);
  }
  if (type === 0)
    bad(
      `unknown type ${e.typeS >= 0 ? JSON.stringify(decodeString(b, e.typeS, e.typeE, e.typeF)) : "(not a string)"}`,
    );
  e.type = type;
  if (
    e.size < 0 ||
    e.mode < 0 ||
    e.uid < 0 ||
    e.gid < 0 ||
    e.offset < 0 ||
    e.innerOffset < 0 ||
    e.devMajor < 0 ||
    e.devMinor < 0 ||
    e.chunkOffset < 0 ||
    e.chunkSize < 0
  ) {
    for (const id of NUMBER_KEY_ORDER)
      if (e.num[id] < 0) bad(`${KEY_NAMES[id]} is not a non-negative integer`);
  }
  if (
    e.modtimeS === NOT_STRING ||
    e.linkNameS === NOT_STRING ||
    e.userNameS === NOT_STRING ||
    e.groupNameS === NOT_STRING ||
    e.digestS === NOT_STRING ||
    e.chunkDigestS === NOT_STRING
  ) {
    for (const [k, v] of [
      ["modtime", e.modtimeS],
      ["linkName", e.linkNameS],
      ["userName", e.userNameS],
      ["groupName", e.groupNameS],
      ["digest", e.digestS],
      ["chunkDigest", e.chunkDigestS],
    ] as const)
      if (v === NOT_STRING) bad(`${k} is not a string`);
  }
  if (!(e.checked & DIGEST_OK) && !isDigest(b, e.digestS, e.digestE, e.digestF))
    bad("digest is not a sha256 digest");
  if (
    !(e.checked & CHUNK_DIGEST_OK) &&
    !isDigest(b, e.chunkDigestS, e.chunkDigestE, e.chunkDigestF)
  )
    bad("chunkDigest is not a sha256 digest");
  if (e.xattrsS === NOT_STRING) bad("xattrs is not an object");
  if (e.xattrsS === BAD_XATTR) bad("xattr value is not base64");
}

/** The type code of the unescaped type string bytes [s, e), or 0. */
function typeCode(b: Buffer, s: number, e: number): number {
  const len = e - s;
  const c0 = b[s];
  let code = 0;
  if (len === 3) code = c0 === 0x64 ? T_DIR : c0 === 0x72 ? T_REG : 0;
  else if (len === 4) code = c0 === 0x63 ? T_CHAR : c0 === 0x66 ? T_FIFO : 0;
  else if (len === 5) code = c0 === 0x62 ? T_BLOCK : c0 === 0x63 ? T_CHUNK : 0;
  else if (len === 7) code = T_SYMLINK;
  else if (len === 8) code = T_HARDLINK;
  const want = TYPE_BYTES[code];
  let k = 0;
  while (k < len && b[s + k] === want[k]) k++;
  return k === len && code !== 0 ? code : 0;
}
