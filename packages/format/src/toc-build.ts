import { FormatError, LimitError } from "./errors.js";
import { PREFETCH_LANDMARK, TOC_TAR_NAME } from "./landmark.js";
import { cleanEntryName } from "./tar-header.js";
import { KeyReader } from "./toc-key.js";
import {
  countEntries,
  decodeString,
  EntryScratch,
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
  rescanEntry,
  scanToc,
  T_CHUNK,
  T_DIR,
  T_HARDLINK,
  T_REG,
} from "./toc-scan.js";
import { grow, TocTables } from "./toc-tables.js";

/** Default bound on the entries of one TOC: what the process builds stays well under 1 GiB. */
export const DEFAULT_MAX_TOC_ENTRIES = 2_000_000;
/** Smallest possible entry object, `{"name":"","type":"dir"}`: more bytes may hold more entries. */
const MIN_ENTRY_BYTES = 24;
/** Deepest entry path (components) and longest (bytes) accepted: Linux's PATH_MAX is 4096. */
export const MAX_PATH_DEPTH = 1024;
export const MAX_PATH_BYTES = 64 * 1024;
const TOC_TAR_BYTES = Buffer.from(TOC_TAR_NAME, "latin1");
const PREFETCH_BYTES = Buffer.from(PREFETCH_LANDMARK, "latin1");

/**
 * Builds the tables of TOC JSON `bytes` in one scan, checking everything the reader relies
 * on (the tree, hardlinks, chunk tiling); `tocOffset` bounds chunk offsets.
 */
export function buildTocTables(
  bytes: Buffer,
  tocOffset: number,
  maxEntries = DEFAULT_MAX_TOC_ENTRIES,
): TocTables {
  // A TOC big enough to hold more than maxEntries entries is counted first (cheaply), so
  // an oversized one is refused before the tree costs memory.
  if (bytes.length > maxEntries * MIN_ENTRY_BYTES) {
    const n = countEntries(bytes);
    if (n > maxEntries)
      throw new LimitError(`TOC has ${n} entries, more than the limit of ${maxEntries}`);
  }
  const builder =
    scanToc(bytes, () => new TocBuilder(bytes), { maxEntries }) ?? new TocBuilder(bytes);
  builder.finish(tocOffset);
  return builder;
}

/** Receives the scanned entries into the tables (see toc-scan.ts for the code's shape). */
class TocBuilder extends TocTables implements EntrySink {
  /** Chunk records from here on wait for the next member's offset (cNext). */
  private pendingFrom = 0;
  private lastReg = -1;
  private readonly hardlinks: number[] = [];
  private readonly unames = new Map<number, number>();
  private readonly gnames = new Map<number, number>();
  private landmarkSeen = false;
  /** Reads each entry's name as the scanner meets it (EntrySink.names), other keys too. */
  readonly names = new KeyReader();
  /** Ancestors' key ends and hashes, for parents. */
  private readonly prefixes: number[] = [];

  entry(e: EntryScratch, index: number): void {
    if (index === this.entryStart.length) this.entryStart = grow(this.entryStart, index * 2);
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
    // The key: the name's own bytes when plain ASCII and already clean, else cleaned into
    // the side buffer.
    const key = this.names;
    let buf = b;
    let s = e.strS[K_NAME];
    let end = e.strF[K_NAME] === 0 ? key.end : -1;
    if (end < 0) {
      const clean = cleanEntryName(decodeString(b, e.nameS, e.nameE, e.nameF));
      if (clean === TOC_TAR_NAME) return;
      s = this.sideKey(clean);
      end = this.sideLen;
      buf = this.side;
      key.read(buf, s, end);
    } else if (end - s === TOC_TAR_BYTES.length && b.compare(TOC_TAR_BYTES, 0, 17, s, end) === 0)
      return;
    const type = e.type;

    // The slot for the key, made with its parents. Bounded so that every node's path, made
    // once per node, stays small in total.
    if (key.slashes >= MAX_PATH_DEPTH || end - s > MAX_PATH_BYTES) this.tooLong(buf, s, end);
    let k = this.find(buf, s, end, key.hash);
    // Evaluated for every entry, on the root when the key is new (see toc-scan.ts: the first
    // existing key may come after entry is optimized).
    const f = Math.max(k, 0);
    const replacesDir = this.nType[f] === T_DIR && type !== T_DIR && this.nFirst[f] > 0;
    if (k >= 0) {
      if (replacesDir) this.refuse(k, "replaces a non-empty directory");
    } else {
      const slash = key.lastSlash;
      let parent = slash < 0 ? 0 : this.find(buf, s, slash, key.prefixHash);
      if (parent < 0) parent = this.parents(buf, s, slash);
      if (this.nType[parent] !== T_DIR) this.underNonDir(buf, s, end);
      k = this.newSlot(parent, buf, s, end, key.hash, type);
    }

    // The entry's fields into slot k (a slot may be assigned twice: every field written).
    // Entries name their owner by id, and the name, when given, holds for later entries of
    // that id. Most TOCs give no names: no map is looked at then.
    const { num, strS, strE } = e;
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

  private record(e: EntryScratch, index: number, fileSize: number): void {
    if (this.cCount === this.cCap) this.growRecords();
    const k = this.cCount++;
    const num = e.num;
    this.cOffset[k] = num[K_OFFSET];
    this.cInner[k] = num[K_INNEROFFSET];
    this.cChunkOffset[k] = num[K_CHUNKOFFSET];
    // No chunkSize: the chunk runs to the end of the file.
    this.cChunkSize[k] = num[K_CHUNKSIZE] || fileSize - num[K_CHUNKOFFSET];
    this.cEntry[k] = index;
    this.cDigest[k] = e.strE[K_CHUNKDIGEST] > e.strS[K_CHUNKDIGEST] ? 1 : 0;
  }

  /** Appends a cleaned name to the side buffer; returns where it starts (it ends at sideLen). */
  private sideKey(clean: string): number {
    const enc = Buffer.from(clean, "utf8");
    if (this.sideLen + enc.length > this.side.length) {
      const grown = Buffer.alloc(Math.max(this.side.length * 2, this.sideLen + enc.length));
      this.side.copy(grown, 0, 0, this.sideLen);
      this.side = grown;
    }
    const s = this.sideLen;
    enc.copy(this.side, s);
    this.sideLen = s + enc.length;
    return s;
  }

  /**
   * Makes the missing ancestors of the key buf[s, slash) included: the hash of every
   * prefix in one pass, then up to the nearest existing one, then down making each (no
   * recursion, linear in the key's length: a path of 100,000 components makes 100,000
   * parents). Returns the slot of buf[s, slash).
   */
  private parents(buf: Buffer, s: number, slash: number): number {
    const pre = this.prefixes; // pairs: end, hash
    pre.length = 0;
    const whole = new KeyReader();
    whole.read(buf, s, slash, pre);
    pre.push(slash, whole.hash);
    let i = pre.length - 2;
    let parent = 0;
    for (; i > 0; i -= 2) {
      const k = this.find(buf, s, pre[i - 2], pre[i - 1]);
      if (k >= 0) {
        parent = k;
        break;
      }
    }
    // pre[i..] are missing (pre[i - 2] is `parent`, or i is 0 under the root).
    // Under a non-directory only if the nearest existing ancestor is not one.
    if (i < pre.length && this.nType[parent] !== T_DIR) this.underNonDir(buf, s, pre[i]);
    for (; i < pre.length; i += 2) parent = this.newSlot(parent, buf, s, pre[i], pre[i + 1], T_DIR);
    return parent;
  }

  private tooLong(buf: Buffer, s: number, e: number): never {
    throw new LimitError(
      `TOC entry ${JSON.stringify(`${this.keyString(buf, s, Math.min(e, s + 40))}…`)} is ${this.names.slashes + 1} levels and ${e - s} bytes long, more than the limit of ${MAX_PATH_DEPTH} levels or ${MAX_PATH_BYTES} bytes`,
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

  private keyString(buf: Buffer, s: number, e: number): string {
    return buf.toString(buf === this.bytes ? "latin1" : "utf8", s, e);
  }

  /** After the last entry: member ends, hardlink targets, the chunk tiling check. */
  finish(tocOffset: number): void {
    this.cNext.fill(tocOffset, this.pendingFrom, this.cCount);
    this.pendingFrom = this.cCount;
    if (!this.landmarkSeen) this.prioritized = [];
    const scratch = new EntryScratch();
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
    // Chunks tile each file exactly, each inside the blob's payload area (after 0, before
    // the TOC, its member ending after it starts). The one check (in place: see toc-scan.ts).
    const { nType, nSize, nCf, nCc, cChunkOffset, cChunkSize, cOffset, cNext } = this;
    for (let k = 0; k < this.count; k++) {
      if (nType[k] !== T_REG || nSize[k] === 0) continue;
      let pos = 0;
      let fault = "";
      for (let r = nCf[k]; r < nCf[k] + nCc[k] && fault === ""; r++) {
        const cs = cChunkSize[r];
        const off = cOffset[r];
        if (cChunkOffset[r] !== pos)
          fault = `chunks do not tile the file (gap or overlap at ${pos})`;
        else if (cs <= 0) fault = `chunk at ${pos} is empty`;
        else if (off <= 0 || off >= tocOffset || cNext[r] <= off)
          fault = `chunk at ${pos} has an invalid blob offset ${off}`;
        else pos += cs;
      }
      if (fault === "" && pos !== nSize[k]) fault = `chunks cover ${pos} bytes of ${nSize[k]}`;
      if (fault !== "") throw new FormatError(`${this.pathOf(k)}: ${fault}`);
    }
  }
}
