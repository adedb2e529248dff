import type { ChunkRef } from "./chunk.js";
import { FormatError } from "./errors.js";
import { PREFETCH_LANDMARK, TOC_TAR_NAME } from "./landmark.js";
import type { Node } from "./reader.js";
import { cleanEntryName } from "./tar-header.js";
import type { TocEntry } from "./toc.js";
import {
  countEntries,
  decodeString,
  type EntryScratch,
  type EntrySink,
  K_CHUNKDIGEST,
  K_CHUNKOFFSET,
  K_CHUNKSIZE,
  K_GID,
  K_GROUPNAME,
  K_INNEROFFSET,
  K_NAME,
  K_OFFSET,
  K_SIZE,
  K_UID,
  K_USERNAME,
  KEY_HASH_SEED,
  keyHashStep,
  LimitError,
  rescanEntry,
  EntryScratch as Scratch,
  scanToc,
  T_CHUNK,
  T_DIR,
  T_HARDLINK,
  T_REG,
  TYPE_NAMES,
} from "./toc-scan.js";

/** Default bound on the entries of one TOC: what the process builds stays well under 1 GiB. */
export const DEFAULT_MAX_TOC_ENTRIES = 2_000_000;
/** Smallest possible entry object, `{"name":"","type":"dir"}`: more bytes may hold more entries. */
const MIN_ENTRY_BYTES = 24;
/** Deepest entry path (components) and longest (bytes) accepted: Linux's PATH_MAX is 4096. */
export const MAX_PATH_DEPTH = 1024;
export const MAX_PATH_BYTES = 64 * 1024;
const TOC_TAR_BYTES = Buffer.from(TOC_TAR_NAME, "latin1");

type NodeType = Node["type"];

/**
 * A TOC's file tree, built in one pass over the JSON bytes (see toc-scan.ts) into typed
 * arrays: no object is made per entry. A node ("slot") is keyed by the bytes of its cleaned
 * path, in the JSON itself when the name is plain ASCII and already clean, in a hash table
 * of slots. Node objects are made on first use (lookup, walk) and kept. Every check of the
 * entries happens here, at build time.
 */
export class TocIndex implements EntrySink {
  /** Map-like view of the nodes by cleaned path (made on demand). */
  readonly nodes: NodeView;
  /** Regular-file slots before the `.prefetch.landmark` entry, if there is one. */
  private prioritized: number[] = [];

  /** Start of each entry's JSON object, by entry index. */
  private entryStart: Int32Array<ArrayBuffer>;

  // Chunk records: one per reg entry with data and per chunk entry, in TOC order.
  private cCap = 1024;
  private cCount = 0;
  private cOffset: Float64Array<ArrayBuffer>;
  private cNext: Float64Array<ArrayBuffer>;
  private cInner: Float64Array<ArrayBuffer>;
  private cChunkOffset: Float64Array<ArrayBuffer>;
  private cChunkSize: Float64Array<ArrayBuffer>;
  /** Entry index of each record (its chunkDigest is decoded from that entry). */
  private cEntry: Int32Array<ArrayBuffer>;
  /** 1 when the record's entry has a chunkDigest. */
  private cDigest: Uint8Array<ArrayBuffer>;
  private pendingFrom = 0;

  // Node slots (0 is the root).
  private nCap = 1024;
  count = 0;
  private nEntry: Int32Array<ArrayBuffer>;
  private nType: Uint8Array<ArrayBuffer>;
  private nKeyS: Int32Array<ArrayBuffer>;
  private nKeyE: Int32Array<ArrayBuffer>;
  private nHash: Int32Array<ArrayBuffer>;
  private nFirst: Int32Array<ArrayBuffer>;
  private nLast: Int32Array<ArrayBuffer>;
  private nNext: Int32Array<ArrayBuffer>;
  private nSize: Float64Array<ArrayBuffer>;
  private nCf: Int32Array<ArrayBuffer>;
  private nCc: Int32Array<ArrayBuffer>;
  private nUser: Int32Array<ArrayBuffer>;
  private nGroup: Int32Array<ArrayBuffer>;
  private nLinks: Int32Array<ArrayBuffer>;
  private nTarget: Int32Array<ArrayBuffer>;
  /** Hash table of slots + 1 (0: empty), open addressing. */
  private table: Int32Array<ArrayBuffer>;
  /** Keys that are not bytes of the JSON (names that needed cleaning or decoding). */
  private side = Buffer.alloc(4096);
  private sideLen = 0;
  private readonly sidePaths = new Map<number, string>();
  private objs: (TocNode | undefined)[] = [];

  private lastReg = -1;
  private readonly hardlinks: number[] = [];
  private readonly unames = new Map<number, number>();
  private readonly gnames = new Map<number, number>();
  private landmarkSeen = false;
  // Set by hashKey: the hash of the key up to its last slash, and that slash.
  private prefixHash = 0;
  private lastSlash = -1;
  private slashes = 0;

  constructor(readonly bytes: Buffer) {
    // Sized from the JSON length, grown if short: a real entry takes 100-350 bytes of JSON
    // (real TOCs: 250-350 bytes an entry). Over-sizing costs more than growing: megabytes of
    // zeroed typed arrays, and the scavenges V8 runs for external memory pressure.
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
    this.nodes = new NodeView(this);
    this.newSlot(this.bytes, 0, 0, KEY_HASH_SEED, T_DIR);
    this.nEntry[0] = -1;
  }

  /** Builds the tree of TOC JSON `bytes`; `tocOffset` bounds chunk offsets. */
  static build(bytes: Buffer, tocOffset: number, maxEntries = DEFAULT_MAX_TOC_ENTRIES): TocIndex {
    // A TOC big enough to hold more than maxEntries entries is counted first (cheaply), so
    // an oversized one is refused before the tree costs memory.
    if (bytes.length > maxEntries * MIN_ENTRY_BYTES) {
      const n = countEntries(bytes);
      if (n > maxEntries)
        throw new LimitError(`TOC has ${n} entries, more than the limit of ${maxEntries}`);
    }
    const index = scanToc(bytes, () => new TocIndex(bytes), { maxEntries }) ?? new TocIndex(bytes);
    index.finish(tocOffset);
    return index;
  }

  get root(): TocNode {
    return this.node(0);
  }

  // ---- building ------------------------------------------------------------------------

  private growRecords(): void {
    const cap = this.cCap * 2;
    this.cOffset = growF(this.cOffset, cap);
    this.cNext = growF(this.cNext, cap);
    this.cInner = growF(this.cInner, cap);
    this.cChunkOffset = growF(this.cChunkOffset, cap);
    this.cChunkSize = growF(this.cChunkSize, cap);
    this.cEntry = growI(this.cEntry, cap);
    const d = new Uint8Array(cap);
    d.set(this.cDigest);
    this.cDigest = d;
    this.cCap = cap;
  }

  private record(e: EntryScratch, index: number, fileSize: number): void {
    if (this.cCount === this.cCap) this.growRecords();
    const k = this.cCount++;
    // The scratch arrays, not its getters: this runs for every entry, mostly interpreted.
    const num = e.num;
    this.cOffset[k] = num[K_OFFSET];
    // Every field written, zeros included: a store that runs only for a rare record (the
    // first chunk entry, an inner offset) would send optimized code back to the interpreter.
    this.cInner[k] = num[K_INNEROFFSET];
    this.cChunkOffset[k] = num[K_CHUNKOFFSET];
    this.cChunkSize[k] = num[K_CHUNKSIZE] || fileSize - num[K_CHUNKOFFSET];
    this.cEntry[k] = index;
    this.cDigest[k] = e.strE[K_CHUNKDIGEST] > e.strS[K_CHUNKDIGEST] ? 1 : 0;
  }

  entry(e: EntryScratch, index: number): void {
    if (index === this.entryStart.length) this.entryStart = growI(this.entryStart, index * 2);
    this.entryStart[index] = e.start;
    // Each payload's range ends where the next member starts (the next entry with an
    // offset and no inner offset), or at the TOC.
    const offset = e.num[K_OFFSET];
    if (offset > 0 && e.num[K_INNEROFFSET] === 0) {
      this.cNext.fill(offset, this.pendingFrom, this.cCount);
      this.pendingFrom = this.cCount;
    }
    const b = this.bytes;
    if (e.type === T_CHUNK) {
      const reg = this.lastReg;
      if (reg < 0)
        throw new FormatError(
          `TOC chunk entry ${JSON.stringify(decodeString(b, e.nameS, e.nameE, e.nameF))} has no regular file before it`,
        );
      this.record(e, index, this.nSize[reg]);
      this.nCc[reg]++;
      return;
    }
    // The key: the name's own bytes when plain ASCII and already clean (read with the
    // name, hash included: see Scanner.name), else cleaned.
    const ks = e.strS[K_NAME];
    const ke = e.nameKeyE;
    // One path on from here for both kinds of key (one copy of the code to compile).
    let buf = b;
    let s = ks;
    let end = ke;
    let h = e.nameHash;
    let clean = "";
    if (ke < 0) {
      clean = cleanEntryName(decodeString(b, e.nameS, e.nameE, e.nameF));
      if (clean === TOC_TAR_NAME) return;
      const enc = Buffer.from(clean, "utf8");
      if (this.sideLen + enc.length > this.side.length) {
        const grown = Buffer.alloc(Math.max(this.side.length * 2, this.sideLen + enc.length));
        this.side.copy(grown, 0, 0, this.sideLen);
        this.side = grown;
      }
      enc.copy(this.side, this.sideLen);
      buf = this.side;
      s = this.sideLen;
      end = s + enc.length;
      this.sideLen = end;
      h = this.hashKey(buf, s, end);
    } else {
      if (ke - ks === TOC_TAR_BYTES.length && b.compare(TOC_TAR_BYTES, 0, 17, ks, ke) === 0) return;
      this.prefixHash = e.namePrefixHash;
      this.lastSlash = e.nameLastSlash;
      this.slashes = e.nameSlashes;
    }
    const type = e.type;

    // The slot for the key, made with its parents (iterative: a path of 100,000 components
    // makes 100,000 parents without recursion). Bounded so that every node's path, made
    // once per node, stays small in total.
    if (this.slashes >= MAX_PATH_DEPTH || end - s > MAX_PATH_BYTES) this.tooLong(buf, s, end);
    let k = this.find(buf, s, end, h);
    // Evaluated for every entry (on the root when the key is new), for the reason in find.
    const f = Math.max(k, 0);
    const replacesDir = this.nType[f] === T_DIR && type !== T_DIR && this.nFirst[f] > 0;
    if (k >= 0) {
      if (replacesDir) this.refuse(k, "replaces a non-empty directory");
    } else {
      const slash = this.lastSlash;
      let parent = slash < 0 ? 0 : this.find(buf, s, slash, this.prefixHash);
      if (parent < 0) parent = this.parents(buf, s, slash);
      // child and newSlot, written here: called from here only on the usual path (parents
      // calls them for missing ancestors), they are not compiled on their own first.
      if (this.nType[parent] !== T_DIR) this.underNonDir(buf, s, end);
      if (this.count === this.nCap) this.growSlots();
      k = this.count++;
      const enc = s ^ (buf !== b ? -1 : 0); // see newSlot
      this.nKeyS[k] = enc;
      this.nKeyE[k] = enc + (end - s);
      this.nHash[k] = h;
      this.nType[k] = type;
      this.nEntry[k] = -1;
      if (this.count * 2 > this.table.length) this.rehash();
      else {
        const t = this.table;
        const mask = t.length - 1;
        let i = ((h & mask) - 1) & mask;
        do i = (i + 1) & mask;
        while (t[i] !== 0);
        t[i] = k + 1;
      }
      const last = this.nLast[parent];
      if (last === 0) this.nFirst[parent] = k + 1;
      else this.nNext[last - 1] = k + 1;
      this.nLast[parent] = k + 1;
      // A new slot on a side key (stored as -(start + 1)) keeps its path.
      if (enc < 0) this.sidePaths.set(k, clean);
    }

    // The entry's fields into slot k.
    // Entries name their owner by id, and the name, when given, holds for later entries of
    // that id. Most TOCs give no names: no map is looked at then.
    const { num, strS, strE } = e; // not the getters: see record
    // Written for every entry, zeros included (a slot may be assigned twice): a store that
    // runs only for a rare entry would send optimized code back to the interpreter (see find).
    if (strE[K_USERNAME] > strS[K_USERNAME]) {
      this.unames.set(num[K_UID], index);
      this.nUser[k] = index + 1;
    } else this.nUser[k] = this.unames.size === 0 ? 0 : (this.unames.get(num[K_UID]) ?? -1) + 1;
    if (strE[K_GROUPNAME] > strS[K_GROUPNAME]) {
      this.gnames.set(num[K_GID], index);
      this.nGroup[k] = index + 1;
    } else this.nGroup[k] = this.gnames.size === 0 ? 0 : (this.gnames.get(num[K_GID]) ?? -1) + 1;
    const size = num[K_SIZE];
    this.nType[k] = type;
    this.nEntry[k] = index;
    this.nSize[k] = type === T_REG ? size : 0;
    this.nCf[k] = this.cCount;
    this.nCc[k] = 0;
    if (type === T_REG) {
      this.lastReg = k;
      if (size > 0) {
        this.record(e, index, size);
        this.nCc[k] = 1;
      }
      if (!this.landmarkSeen) this.prioritized.push(k);
    } else if (type === T_HARDLINK) this.hardlinks.push(k);
    if (!this.landmarkSeen && this.isKey(k, PREFETCH_BYTES)) {
      this.landmarkSeen = true;
      if (type === T_REG) this.prioritized.pop(); // the landmark itself
    }
  }

  /** The key hash of buf[s, e) (see keyHashStep); sets prefixHash, lastSlash and slashes. */
  private hashKey(buf: Buffer, s: number, e: number): number {
    let h = KEY_HASH_SEED;
    let ph = KEY_HASH_SEED;
    let ls = -1;
    let n = 0;
    for (let p = s; p < e; p++) {
      const c = buf[p];
      if (c === 0x2f) {
        ph = h;
        ls = p;
        n++;
      }
      h = keyHashStep(h, c);
    }
    this.prefixHash = ph;
    this.lastSlash = ls;
    this.slashes = n;
    return h;
  }

  private growSlots(): void {
    const cap = this.nCap * 2;
    this.nEntry = growI(this.nEntry, cap);
    const t = new Uint8Array(cap);
    t.set(this.nType);
    this.nType = t;
    this.nKeyS = growI(this.nKeyS, cap);
    this.nKeyE = growI(this.nKeyE, cap);
    this.nHash = growI(this.nHash, cap);
    this.nFirst = growI(this.nFirst, cap);
    this.nLast = growI(this.nLast, cap);
    this.nNext = growI(this.nNext, cap);
    this.nSize = growF(this.nSize, cap);
    this.nCf = growI(this.nCf, cap);
    this.nCc = growI(this.nCc, cap);
    this.nUser = growI(this.nUser, cap);
    this.nGroup = growI(this.nGroup, cap);
    this.nLinks = growI(this.nLinks, cap);
    this.nTarget = growI(this.nTarget, cap);
    this.nCap = cap;
  }

  /** The slot with this key, or -1. */
  private find(buf: Buffer, s: number, e: number, h: number): number {
    // Written so that every operation runs on the first lookups (a hit, a side key, a
    // collision): an operation V8 first meets after optimizing sends the code back to the
    // interpreter, and it is compiled again.
    const t = this.table;
    const mask = t.length - 1;
    const len = e - s;
    const side = this.side;
    const bytes = this.bytes;
    for (let i = ((h & mask) - 1) & mask; ; ) {
      i = (i + 1) & mask;
      const v = t[i];
      if (v === 0) return -1;
      const k = v - 1;
      const enc = this.nKeyS[k];
      if (this.nHash[k] !== h || this.nKeyE[k] - enc !== len) continue;
      const kb = enc < 0 ? side : bytes;
      const ks = enc ^ (enc >> 31); // side keys are stored as -(start + 1)
      let p = 0;
      while (p < len && kb[ks + p] === buf[s + p]) p++;
      if (p === len) return k;
    }
  }

  private isKey(k: number, want: Buffer): boolean {
    const enc = this.nKeyS[k];
    const len = this.nKeyE[k] - enc;
    if (len !== want.length) return false;
    const ks = enc < 0 ? -enc - 1 : enc;
    return (enc < 0 ? this.side : this.bytes).compare(want, 0, len, ks, ks + len) === 0;
  }

  private newSlot(buf: Buffer, s: number, e: number, h: number, type: number): number {
    if (this.count === this.nCap) this.growSlots();
    const k = this.count++;
    // Side keys are stored as -(start + 1) (~start); nKeyE - nKeyS is the key's length
    // either way. Branch-free, for the reason in find.
    const enc = s ^ (buf !== this.bytes ? -1 : 0);
    this.nKeyS[k] = enc;
    this.nKeyE[k] = enc + (e - s);
    this.nHash[k] = h;
    this.nType[k] = type;
    this.nEntry[k] = -1;
    // Every other field's default is zero, as a new (or grown) array holds it: slot + 1 in
    // nFirst, nLast, nNext and nTarget, entry index + 1 in nUser and nGroup (0: none), links
    // beyond the first in nLinks. Not written: pages no slot changes are never touched.
    if (this.count * 2 > this.table.length) this.rehash();
    else {
      // insert, written here (a small loop V8 would compile on its own and again inlined).
      const t = this.table;
      const mask = t.length - 1;
      let i = ((h & mask) - 1) & mask;
      do i = (i + 1) & mask;
      while (t[i] !== 0);
      t[i] = k + 1;
    }
    return k;
  }

  private insert(k: number): void {
    const t = this.table;
    const mask = t.length - 1;
    let i = ((this.nHash[k] & mask) - 1) & mask;
    do i = (i + 1) & mask;
    while (t[i] !== 0);
    t[i] = k + 1;
  }

  private rehash(): void {
    this.table = new Int32Array(this.table.length * 2);
    for (let k = 0; k < this.count; k++) this.insert(k);
  }

  // The rare paths of finding a slot (in entry), apart: V8 tiers small functions up sooner,
  // and the first thousands of entries run before it does.

  /**
   * Makes the missing ancestors of the key buf[s, slash) included: the hash of every
   * prefix in one pass, then up to the nearest existing one, then down making each (no
   * recursion, linear in the key's length). Returns the slot of buf[s, slash).
   */
  private parents(buf: Buffer, s: number, slash: number): number {
    const ends: number[] = [];
    const hashes: number[] = [];
    let hh = KEY_HASH_SEED;
    for (let p = s; p < slash; p++) {
      const c = buf[p];
      if (c === 0x2f) {
        ends.push(p);
        hashes.push(hh);
      }
      hh = keyHashStep(hh, c);
    }
    ends.push(slash);
    hashes.push(hh);
    let i = ends.length - 1;
    let parent = 0;
    for (; i > 0; i--) {
      const k = this.find(buf, s, ends[i - 1], hashes[i - 1]);
      if (k >= 0) {
        parent = k;
        break;
      }
    }
    // ends[i..] are missing (ends[i - 1] is `parent`, or i is 0 under the root).
    for (; i < ends.length; i++) parent = this.child(parent, buf, s, ends[i], hashes[i], T_DIR);
    return parent;
  }

  private tooLong(buf: Buffer, s: number, e: number): never {
    throw new LimitError(
      `TOC entry ${JSON.stringify(`${this.keyString(buf, s, Math.min(e, s + 40))}…`)} is ${this.slashes + 1} levels and ${e - s} bytes long, more than the limit of ${MAX_PATH_DEPTH} levels or ${MAX_PATH_BYTES} bytes`,
    );
  }

  private refuse(k: number, why: string): never {
    throw new FormatError(`TOC entry ${JSON.stringify(this.pathOf(k))} ${why}`);
  }

  private underNonDir(buf: Buffer, s: number, e: number): never {
    throw new FormatError(
      `TOC entry ${JSON.stringify(this.keyString(buf, s, e))} is under a non-directory`,
    );
  }

  /** A new slot for key buf[s, e) under `parent`. */
  private child(
    parent: number,
    buf: Buffer,
    s: number,
    e: number,
    h: number,
    type: number,
  ): number {
    if (this.nType[parent] !== T_DIR) this.underNonDir(buf, s, e);
    const k = this.newSlot(buf, s, e, h, type);
    const last = this.nLast[parent];
    if (last === 0) this.nFirst[parent] = k + 1;
    else this.nNext[last - 1] = k + 1;
    this.nLast[parent] = k + 1;
    return k;
  }

  private keyString(buf: Buffer, s: number, e: number): string {
    return buf.toString(buf === this.bytes ? "latin1" : "utf8", s, e);
  }

  private finish(tocOffset: number): void {
    this.cNext.fill(tocOffset, this.pendingFrom, this.cCount);
    this.pendingFrom = this.cCount;
    if (!this.landmarkSeen) this.prioritized = [];
    const scratch = new Scratch();
    const linkOf = (k: number): string => {
      rescanEntry(this.bytes, this.entryStart[this.nEntry[k]], scratch);
      return decodeString(this.bytes, scratch.linkNameS, scratch.linkNameE, scratch.linkNameF);
    };
    for (const h of this.hardlinks) {
      const linkName = linkOf(h);
      let t = this.slotOf(cleanEntryName(linkName));
      for (let depth = 0; t >= 0 && this.nType[t] === T_HARDLINK && depth < 64; depth++)
        t = this.nTarget[t] > 0 ? this.nTarget[t] - 1 : this.slotOf(cleanEntryName(linkOf(t)));
      if (t < 0 || this.nType[t] === T_HARDLINK)
        throw new FormatError(
          `hardlink ${JSON.stringify(this.pathOf(h))} points to missing ${JSON.stringify(linkName)}`,
        );
      this.nTarget[h] = t + 1;
      this.nLinks[t]++;
    }
    // Chunks must tile each file exactly and point inside the blob's payload area: checked
    // here in one loop (a check per file in its own function was compiled twice by V8, on
    // its own and inlined, for one pass); the messages come from validateChunks. It comes
    // last: an operation first met after a loop compiled on the stack sends the code back to
    // the interpreter, and hardlinks are resolved before it.
    const { nType, nSize, nCf, nCc, cChunkOffset, cChunkSize, cOffset, cNext } = this;
    for (let k = 0; k < this.count; k++) {
      if (nType[k] !== T_REG || nSize[k] === 0) continue;
      let pos = 0;
      const cf = nCf[k];
      let r = cf;
      for (; r < cf + nCc[k]; r++) {
        const cs = cChunkSize[r];
        const off = cOffset[r];
        if (cChunkOffset[r] !== pos || cs <= 0 || off <= 0 || off >= tocOffset || cNext[r] <= off)
          break;
        pos += cs;
      }
      if (r < cf + nCc[k] || pos !== nSize[k]) this.validateChunks(k, tocOffset);
    }
  }

  /** Throws why slot k's chunks fail finish's check. */
  private validateChunks(k: number, tocOffset: number): void {
    let pos = 0;
    const size = this.nSize[k];
    const cf = this.nCf[k];
    for (let r = cf; r < cf + this.nCc[k]; r++) {
      if (this.cChunkOffset[r] !== pos)
        throw new FormatError(
          `${this.pathOf(k)}: chunks do not tile the file (gap or overlap at ${pos})`,
        );
      const cs = this.cChunkSize[r];
      if (cs <= 0) throw new FormatError(`${this.pathOf(k)}: chunk at ${pos} is empty`);
      const off = this.cOffset[r];
      if (off <= 0 || off >= tocOffset || this.cNext[r] <= off)
        throw new FormatError(
          `${this.pathOf(k)}: chunk at ${pos} has an invalid blob offset ${off}`,
        );
      pos += cs;
    }
    if (pos !== size)
      throw new FormatError(`${this.pathOf(k)}: chunks cover ${pos} bytes of ${size}`);
  }

  // ---- reading -------------------------------------------------------------------------

  /** The slot at a cleaned path, or -1. */
  slotOf(clean: string): number {
    if (clean === "") return 0;
    const enc = Buffer.from(clean, "utf8");
    return this.find(enc, 0, enc.length, this.hashKey(enc, 0, enc.length));
  }

  pathOf(k: number): string {
    const side = this.sidePaths.get(k);
    if (side !== undefined) return side;
    const enc = this.nKeyS[k];
    if (enc >= 0) return this.bytes.toString("latin1", enc, this.nKeyE[k]);
    const ks = -enc - 1;
    return this.side.toString("utf8", ks, ks + this.nKeyE[k] - enc);
  }

  /** The node object of slot k (made once). */
  node(k: number): TocNode {
    let n = this.objs[k];
    if (n === undefined) {
      n = new TocNode(this, k);
      this.objs[k] = n;
    }
    return n;
  }

  prioritizedPaths(): string[] {
    return this.prioritized.map((k) => this.pathOf(k));
  }

  /** Fills a new node's fields from its slot and entry. */
  fill(n: TocNode, k: number): void {
    n.path = this.pathOf(k);
    n.type = TYPE_NAMES[this.nType[k]] as NodeType;
    n.size = this.nSize[k];
    n.numLink = 1 + this.nLinks[k];
    n.cf = this.nCf[k];
    n.cc = this.nCc[k];
    if (k === 0 && this.nEntry[0] < 0) n.mode = 0o755;
    const i = this.nEntry[k];
    const b = this.bytes;
    if (i < 0) {
      if (n.type === "dir") n.mode = 0o755;
      return;
    }
    const e = new Scratch();
    rescanEntry(b, this.entryStart[i], e);
    n.mode = e.mode;
    n.uid = e.uid;
    n.gid = e.gid;
    n.modtime = decodeString(b, e.modtimeS, e.modtimeE, e.modtimeF);
    n.linkName = decodeString(b, e.linkNameS, e.linkNameE, e.linkNameF);
    n.devMajor = e.devMajor;
    n.devMinor = e.devMinor;
    n.digest = decodeString(b, e.digestS, e.digestE, e.digestF);
    n.userName = this.nameFrom(this.nUser[k] - 1, i, e, true);
    n.groupName = this.nameFrom(this.nGroup[k] - 1, i, e, false);
  }

  private nameFrom(from: number, own: number, e: EntryScratch, user: boolean): string {
    if (from < 0) return "";
    if (from !== own) {
      e = new Scratch();
      rescanEntry(this.bytes, this.entryStart[from], e);
    }
    return user
      ? decodeString(this.bytes, e.userNameS, e.userNameE, e.userNameF)
      : decodeString(this.bytes, e.groupNameS, e.groupNameE, e.groupNameF);
  }

  targetOf(k: number): TocNode | undefined {
    const t = this.nTarget[k];
    return t === 0 ? undefined : this.node(t - 1);
  }

  /** Children of slot k, in TOC order. */
  *childSlots(k: number): Generator<number> {
    for (let c = this.nFirst[k]; c > 0; c = this.nNext[c - 1]) yield c - 1;
  }

  entryOf(k: number): number {
    return this.nEntry[k];
  }

  /** The chunk refs of records [cf, cf + cc). */
  chunkRefs(cf: number, cc: number): ChunkRef[] {
    const out: ChunkRef[] = [];
    const scratch = new Scratch();
    for (let r = cf; r < cf + cc; r++) {
      rescanEntry(this.bytes, this.entryStart[this.cEntry[r]], scratch);
      const d = decodeString(
        this.bytes,
        scratch.chunkDigestS,
        scratch.chunkDigestE,
        scratch.chunkDigestF,
      );
      out.push({
        offset: this.cOffset[r],
        nextOffset: this.cNext[r],
        innerOffset: this.cInner[r],
        chunkOffset: this.cChunkOffset[r],
        chunkSize: this.cChunkSize[r],
        chunkDigest: d || undefined,
      });
    }
    return out;
  }

  /**
   * The chunks of every regular file whose chunks all carry a chunkDigest (the ones verified
   * chunk by chunk), in walk order: slot order, then the file's chunks in order. Read from
   * the tables: no node or chunk ref is made.
   */
  digestChunks(): ChunkTable {
    const cap = this.cCount;
    const offset = new Float64Array(cap);
    const nextOffset = new Float64Array(cap);
    const slot = new Int32Array(cap);
    const nth = new Int32Array(cap);
    const { nType, nCf, nCc, cDigest, cOffset, cNext } = this;
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const cc = nCc[k];
      if (nType[k] !== T_REG || cc === 0) continue;
      const cf = nCf[k];
      let r = cf;
      while (r < cf + cc && cDigest[r] === 1) r++;
      if (r < cf + cc) continue; // a chunk without a digest: the file is verified whole
      for (let j = 0; j < cc; j++) {
        offset[n] = cOffset[cf + j];
        nextOffset[n] = cNext[cf + j];
        slot[n] = k;
        nth[n] = j;
        n++;
      }
    }
    return {
      count: n,
      offset: offset.subarray(0, n),
      nextOffset: nextOffset.subarray(0, n),
      slot: slot.subarray(0, n),
      nth: nth.subarray(0, n),
    };
  }

  /** The xattrs of entry i. */
  xattrsOf(i: number): Record<string, string> {
    if (i < 0) return {};
    const e = new Scratch();
    rescanEntry(this.bytes, this.entryStart[i], e);
    return e.xattrsS >= 0
      ? (JSON.parse(this.bytes.toString("utf8", e.xattrsS, e.xattrsE)) as Record<string, string>)
      : {};
  }

  /** Entry i as JSON.parse gives it. */
  rawEntry(i: number): TocEntry {
    const e = new Scratch();
    rescanEntry(this.bytes, this.entryStart[i], e);
    return JSON.parse(this.bytes.toString("utf8", e.start, e.end)) as TocEntry;
  }
}

const PREFETCH_BYTES = Buffer.from(PREFETCH_LANDMARK, "latin1");

/** Chunks as parallel arrays (see TocIndex.digestChunks); nth indexes the node's chunks. */
export interface ChunkTable {
  count: number;
  offset: Float64Array;
  nextOffset: Float64Array;
  slot: Int32Array;
  nth: Int32Array;
}

function growI(a: Int32Array, cap: number) {
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}
function growF(a: Float64Array, cap: number) {
  const b = new Float64Array(cap);
  b.set(a);
  return b;
}

/** The nodes of an index as a read-only Map-like view (what LayerReader uses). */
export class NodeView {
  constructor(private readonly index: TocIndex) {}
  get(clean: string): Node | undefined {
    const k = this.index.slotOf(clean);
    return k < 0 ? undefined : this.index.node(k);
  }
  /** Every node, parents before children, in TOC order. */
  *values(): Generator<Node> {
    for (let k = 0; k < this.index.count; k++) yield this.index.node(k);
  }
  get size(): number {
    return this.index.count;
  }
  /** Every node's cleaned path (the root's is ""), in TOC order, without making nodes. */
  *paths(): Generator<string> {
    for (let k = 0; k < this.index.count; k++) yield this.index.pathOf(k);
  }
}

/** A node of a TocIndex, made on first use; xattrs, chunk refs and the entry on demand. */
export class TocNode implements Node {
  path = "";
  type: NodeType = "dir";
  size = 0;
  mode = 0;
  uid = 0;
  gid = 0;
  userName = "";
  groupName = "";
  modtime = "";
  linkName = "";
  devMajor = 0;
  devMinor = 0;
  digest = "";
  numLink = 1;
  cf = 0;
  cc = 0;
  private xattrsCache: Record<string, string> | undefined = undefined;
  private entryCache: TocEntry | undefined = undefined;
  private childMap: Map<string, Node> | undefined = undefined;
  private refs: ChunkRef[] | undefined = undefined;

  constructor(
    private readonly index: TocIndex,
    private readonly slot: number,
  ) {
    index.fill(this, slot);
  }

  /** The index the node belongs to, for code that reads its tables rather than nodes. */
  get tocIndex(): TocIndex {
    return this.index;
  }

  get target(): Node | undefined {
    return this.index.targetOf(this.slot);
  }

  get xattrs(): Record<string, string> {
    if (this.xattrsCache === undefined)
      this.xattrsCache = this.index.xattrsOf(this.index.entryOf(this.slot));
    return this.xattrsCache;
  }

  get entry(): TocEntry | undefined {
    const i = this.index.entryOf(this.slot);
    if (i < 0) return undefined;
    if (this.entryCache === undefined) this.entryCache = this.index.rawEntry(i);
    return this.entryCache;
  }

  get chunks(): ChunkRef[] {
    if (this.refs === undefined) this.refs = this.index.chunkRefs(this.cf, this.cc);
    return this.refs;
  }

  get children(): Map<string, Node> | undefined {
    if (this.type !== "dir") return undefined;
    if (this.childMap === undefined) {
      const m = new Map<string, Node>();
      const skip = this.path === "" ? 0 : this.path.length + 1;
      for (const c of this.index.childSlots(this.slot)) {
        const n = this.index.node(c);
        m.set(n.path.slice(skip), n);
      }
      this.childMap = m;
    }
    return this.childMap;
  }
}
