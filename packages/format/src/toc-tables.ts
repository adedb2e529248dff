import { KEY_HASH_SEED, KeyReader } from "./toc-key.js";
import { T_DIR } from "./toc-scan.js";

/**
 * A TOC's file tree as typed arrays (see toc-scan.ts for why): node slots keyed by their
 * cleaned path in one hash table, and chunk records. The builder (toc-build.ts) fills them,
 * the index (toc-index.ts) reads them. A key is bytes of the JSON itself when the name was
 * plain ASCII and already clean, else bytes of the side buffer (names that needed cleaning
 * or decoding).
 */
export class TocTables {
  /** Start of each entry's JSON object, by entry index. */
  entryStart: Int32Array<ArrayBuffer>;

  // Chunk records: one per reg entry with data and per chunk entry, in TOC order.
  cCap: number;
  cCount = 0;
  cOffset: Float64Array<ArrayBuffer>;
  /** Where the record's gzip member ends: the next member's offset, or the TOC's. */
  cNext: Float64Array<ArrayBuffer>;
  cInner: Float64Array<ArrayBuffer>;
  cChunkOffset: Float64Array<ArrayBuffer>;
  cChunkSize: Float64Array<ArrayBuffer>;
  /** Entry index of each record (its chunkDigest is decoded from that entry). */
  cEntry: Int32Array<ArrayBuffer>;
  /** 1 when the record's entry has a chunkDigest. */
  cDigest: Uint8Array<ArrayBuffer>;

  // Node slots (0 is the root). Zero is every field's default, as a new (or grown) array
  // holds it: slot + 1 in nFirst, nLast, nNext and nTarget, entry index + 1 in nUser and
  // nGroup (0: none), links beyond the first in nLinks.
  nCap: number;
  count = 0;
  /** Entry index of the slot (-1: an implicit directory). */
  nEntry: Int32Array<ArrayBuffer>;
  nType: Uint8Array<ArrayBuffer>;
  /** Key range: [nKeyS, nKeyE) of the JSON, or for a side key nKeyS = -(start + 1). */
  nKeyS: Int32Array<ArrayBuffer>;
  nKeyE: Int32Array<ArrayBuffer>;
  nHash: Int32Array<ArrayBuffer>;
  nFirst: Int32Array<ArrayBuffer>;
  nLast: Int32Array<ArrayBuffer>;
  nNext: Int32Array<ArrayBuffer>;
  nSize: Float64Array<ArrayBuffer>;
  /** First chunk record and count. */
  nCf: Int32Array<ArrayBuffer>;
  nCc: Int32Array<ArrayBuffer>;
  nUser: Int32Array<ArrayBuffer>;
  nGroup: Int32Array<ArrayBuffer>;
  nLinks: Int32Array<ArrayBuffer>;
  nTarget: Int32Array<ArrayBuffer>;
  /** Hash table of slots + 1 (0: empty), open addressing. */
  private table: Int32Array<ArrayBuffer>;
  /** Keys that are not bytes of the JSON. */
  side = Buffer.alloc(4096);
  sideLen = 0;
  /** Regular-file slots before the `.prefetch.landmark` entry, if there is one. */
  prioritized: number[] = [];
  private readonly lookupKey = new KeyReader();

  constructor(readonly bytes: Buffer) {
    // Sized from the JSON length, grown if short: a real entry takes 100-350 bytes of JSON.
    const cap = Math.max(256, Math.ceil(bytes.length / 192));
    this.entryStart = new Int32Array(cap);
    this.cCap = cap;
    this.cOffset = new Float64Array(cap);
    this.cNext = new Float64Array(cap);
    this.cInner = new Float64Array(cap);
    this.cChunkOffset = new Float64Array(cap);
    this.cChunkSize = new Float64Array(cap);
    this.cEntry = new Int32Array(cap);
    this.cDigest = new Uint8Array(cap);
    this.nCap = cap;
    this.nEntry = new Int32Array(cap);
    this.nType = new Uint8Array(cap);
    this.nKeyS = new Int32Array(cap);
    this.nKeyE = new Int32Array(cap);
    this.nHash = new Int32Array(cap);
    this.nFirst = new Int32Array(cap);
    this.nLast = new Int32Array(cap);
    this.nNext = new Int32Array(cap);
    this.nSize = new Float64Array(cap);
    this.nCf = new Int32Array(cap);
    this.nCc = new Int32Array(cap);
    this.nUser = new Int32Array(cap);
    this.nGroup = new Int32Array(cap);
    this.nLinks = new Int32Array(cap);
    this.nTarget = new Int32Array(cap);
    this.table = new Int32Array(2 ** Math.ceil(Math.log2(cap * 2)));
    this.newSlot(-1, this.bytes, 0, 0, KEY_HASH_SEED, T_DIR);
  }

  /** The slot with key buf[s, e) of hash h, or -1. */
  find(buf: Uint8Array, s: number, e: number, h: number): number {
    const t = this.table;
    const mask = t.length - 1;
    const len = e - s;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = t[i];
      if (v === 0) return -1;
      const k = v - 1;
      const enc = this.nKeyS[k];
      if (this.nHash[k] !== h || this.nKeyE[k] - enc !== len) continue;
      // Branch-free for side keys (stored as ~start), which may first come late.
      const kb = enc < 0 ? this.side : this.bytes;
      const ks = enc ^ (enc >> 31);
      let p = 0;
      while (p < len && kb[ks + p] === buf[s + p]) p++;
      if (p === len) return k;
    }
  }

  /**
   * A new slot for key buf[s, e) of hash h (buf: the JSON or the side buffer), the last child
   * of `parent` (-1: none, the root).
   */
  newSlot(parent: number, buf: Buffer, s: number, e: number, h: number, type: number): number {
    if (this.count === this.nCap) this.growSlots();
    const k = this.count++;
    const enc = s ^ (buf !== this.bytes ? -1 : 0);
    this.nKeyS[k] = enc;
    this.nKeyE[k] = enc + (e - s);
    this.nHash[k] = h;
    this.nType[k] = type;
    this.nEntry[k] = -1;
    // The one insert: of the new slot, or of every slot into a table grown at half full.
    let from = k;
    if (this.count * 2 > this.table.length) {
      this.table = new Int32Array(this.table.length * 2);
      from = 0;
    }
    const t = this.table;
    const mask = t.length - 1;
    for (let j = from; j <= k; j++) {
      let i = this.nHash[j] & mask;
      while (t[i] !== 0) i = (i + 1) & mask;
      t[i] = j + 1;
    }
    if (parent >= 0) {
      const last = this.nLast[parent];
      if (last === 0) this.nFirst[parent] = k + 1;
      else this.nNext[last - 1] = k + 1;
      this.nLast[parent] = k + 1;
    }
    return k;
  }

  /** Whether slot k's key is the bytes of `want`. */
  isKey(k: number, want: Buffer): boolean {
    const enc = this.nKeyS[k];
    const len = this.nKeyE[k] - enc;
    if (len !== want.length) return false;
    const ks = enc < 0 ? -enc - 1 : enc;
    return (enc < 0 ? this.side : this.bytes).compare(want, 0, len, ks, ks + len) === 0;
  }

  /** The slot at a cleaned path, or -1. */
  slotOf(clean: string): number {
    if (clean === "") return 0;
    const enc = Buffer.from(clean, "utf8");
    this.lookupKey.read(enc, 0, enc.length);
    return this.find(enc, 0, enc.length, this.lookupKey.hash);
  }

  pathOf(k: number): string {
    const enc = this.nKeyS[k];
    if (enc >= 0) return this.bytes.toString("latin1", enc, this.nKeyE[k]);
    const ks = -enc - 1;
    return this.side.toString("utf8", ks, ks + this.nKeyE[k] - enc);
  }

  growRecords(): void {
    const cap = this.cCap * 2;
    this.cOffset = grow(this.cOffset, cap);
    this.cNext = grow(this.cNext, cap);
    this.cInner = grow(this.cInner, cap);
    this.cChunkOffset = grow(this.cChunkOffset, cap);
    this.cChunkSize = grow(this.cChunkSize, cap);
    this.cEntry = grow(this.cEntry, cap);
    this.cDigest = grow(this.cDigest, cap);
    this.cCap = cap;
  }

  private growSlots(): void {
    const cap = this.nCap * 2;
    this.nEntry = grow(this.nEntry, cap);
    this.nType = grow(this.nType, cap);
    this.nKeyS = grow(this.nKeyS, cap);
    this.nKeyE = grow(this.nKeyE, cap);
    this.nHash = grow(this.nHash, cap);
    this.nFirst = grow(this.nFirst, cap);
    this.nLast = grow(this.nLast, cap);
    this.nNext = grow(this.nNext, cap);
    this.nSize = grow(this.nSize, cap);
    this.nCf = grow(this.nCf, cap);
    this.nCc = grow(this.nCc, cap);
    this.nUser = grow(this.nUser, cap);
    this.nGroup = grow(this.nGroup, cap);
    this.nLinks = grow(this.nLinks, cap);
    this.nTarget = grow(this.nTarget, cap);
    this.nCap = cap;
  }
}

type Typed = Int32Array<ArrayBuffer> | Float64Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

/** A copy of `a` with room for `cap` elements (the rest zero). */
export function grow<T extends Typed>(a: T, cap: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a as ArrayLike<number>);
  return b;
}
