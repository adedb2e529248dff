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
  EntryScratch as Scratch,
  LimitError,
  rescanEntry,
  S_ESCAPED,
  S_NONASCII,
  scanToc,
  T_CHUNK,
  T_HARDLINK,
  T_REG,
  TYPE_NAMES,
} from "./toc-scan.js";

/** Default bound on the entries of one TOC: what the process builds stays well under 1 GiB. */
export const DEFAULT_MAX_TOC_ENTRIES = 2_000_000;
/** Smallest possible entry object, `{"name":"","type":"dir"}`: more bytes may hold more entries. */
const MIN_ENTRY_BYTES = 24;

type NodeType = Node["type"];

/**
 * A TOC's file tree, built in one pass over the JSON bytes (see toc-scan.ts). Nodes carry
 * what lookups and stats need; the rest (modtime, digest, xattrs, chunk refs, the raw
 * entry) is decoded from the bytes on first use. Every check happens here, at build time.
 */
export class TocIndex implements EntrySink {
  readonly nodes = new Map<string, TocNode>();
  readonly root: TocNode;
  /** Regular-file paths before the `.prefetch.landmark` entry, if there is one. */
  prioritized: string[] = [];

  /** Start of each entry's JSON object, by entry index. */
  entryStart = new Int32Array(1024);
  /** Chunk records: one per reg entry with data and per chunk entry, in TOC order. */
  private cap = 1024;
  count = 0;
  cOffset = new Float64Array(1024);
  cNext = new Float64Array(1024);
  cInner = new Float64Array(1024);
  cChunkOffset = new Float64Array(1024);
  cChunkSize = new Float64Array(1024);
  /** Entry index of each record (its chunkDigest is decoded from that entry). */
  cEntry = new Int32Array(1024);

  private pendingFrom = 0;
  private lastReg: TocNode | undefined;
  private lastDir: TocNode;
  private readonly hardlinks: TocNode[] = [];
  private readonly unames = new Map<number, string>();
  private readonly gnames = new Map<number, string>();
  private lastUser = { s: 0, e: 0, str: "" };
  private lastGroup = { s: 0, e: 0, str: "" };
  private landmarkSeen = false;

  constructor(readonly bytes: Buffer) {
    this.root = new TocNode(this, "", "dir", undefined);
    this.root.mode = 0o755;
    this.nodes.set("", this.root);
    this.lastDir = this.root;
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

  private grow(): void {
    const cap = this.cap * 2;
    const f = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.cOffset = f(this.cOffset);
    this.cNext = f(this.cNext);
    this.cInner = f(this.cInner);
    this.cChunkOffset = f(this.cChunkOffset);
    this.cChunkSize = f(this.cChunkSize);
    const ce = new Int32Array(cap);
    ce.set(this.cEntry);
    this.cEntry = ce;
    this.cap = cap;
  }

  private record(e: EntryScratch, index: number, fileSize: number): void {
    if (this.count === this.cap) this.grow();
    const k = this.count++;
    this.cOffset[k] = e.offset;
    this.cInner[k] = e.innerOffset;
    this.cChunkOffset[k] = e.chunkOffset;
    this.cChunkSize[k] = e.chunkSize || fileSize - e.chunkOffset;
    this.cEntry[k] = index;
  }

  entry(e: EntryScratch, index: number): void {
    if (index === this.entryStart.length) {
      const s = new Int32Array(index * 2);
      s.set(this.entryStart);
      this.entryStart = s;
    }
    this.entryStart[index] = e.start;
    // Each payload's range ends where the next member starts (the next entry with an
    // offset and no inner offset), or at the TOC.
    if (e.offset > 0 && e.innerOffset === 0) {
      this.cNext.fill(e.offset, this.pendingFrom, this.count);
      this.pendingFrom = this.count;
    }
    const b = this.bytes;
    if (e.type === T_CHUNK) {
      const reg = this.lastReg;
      if (!reg)
        throw new FormatError(
          `TOC chunk entry ${JSON.stringify(decodeString(b, e.nameS, e.nameE, e.nameF))} has no regular file before it`,
        );
      this.record(e, index, reg.size);
      reg.cc++;
      return;
    }
    const path = this.cleanName(e);
    if (path === TOC_TAR_NAME) return;
    const type = TYPE_NAMES[e.type] as NodeType;
    const n = this.ensure(path, type);
    let userName = "";
    if (e.userNameE > e.userNameS) {
      userName = this.shortString(this.lastUser, e.userNameS, e.userNameE, e.userNameF);
      this.unames.set(e.uid, userName);
    } else userName = this.unames.get(e.uid) ?? "";
    let groupName = "";
    if (e.groupNameE > e.groupNameS) {
      groupName = this.shortString(this.lastGroup, e.groupNameS, e.groupNameE, e.groupNameF);
      this.gnames.set(e.gid, groupName);
    } else groupName = this.gnames.get(e.gid) ?? "";
    n.type = type;
    n.i = index;
    n.size = e.type === T_REG ? e.size : 0;
    n.mode = e.mode;
    n.uid = e.uid;
    n.gid = e.gid;
    n.userName = userName;
    n.groupName = groupName;
    n.linkName =
      e.linkNameE > e.linkNameS ? decodeString(b, e.linkNameS, e.linkNameE, e.linkNameF) : "";
    n.details = undefined;
    n.cf = this.count;
    n.cc = 0;
    if (e.type === T_REG) {
      this.lastReg = n;
      if (n.size > 0) {
        this.record(e, index, n.size);
        n.cc = 1;
      }
      if (!this.landmarkSeen) this.prioritized.push(path);
    } else if (e.type === T_HARDLINK) this.hardlinks.push(n);
    if (!this.landmarkSeen && path === PREFETCH_LANDMARK) {
      this.landmarkSeen = true;
      if (e.type === T_REG) this.prioritized.pop(); // the landmark itself
    }
  }

  /** A user or group name: the same bytes as the last one give the same string. */
  private shortString(
    last: { s: number; e: number; str: string },
    s: number,
    e: number,
    f: number,
  ) {
    const b = this.bytes;
    const len = e - s;
    if (len === last.e - last.s) {
      let k = 0;
      while (k < len && b[s + k] === b[last.s + k]) k++;
      if (k === len) return last.str;
    }
    last.s = s;
    last.e = e;
    last.str = decodeString(b, s, e, f);
    return last.str;
  }

  /** cleanEntryName of the entry's name: without decoding twice when it is already clean. */
  private cleanName(e: EntryScratch): string {
    const b = this.bytes;
    const s = e.nameS;
    let end = e.nameE;
    if (e.nameF & S_ESCAPED) return cleanEntryName(decodeString(b, s, end, e.nameF));
    if (end === s) return "";
    let clean = b[s] !== 0x2f;
    let seg = s;
    for (let p = s; clean && p <= end; p++) {
      if (p === end || b[p] === 0x2f) {
        const len = p - seg;
        if (len === 0)
          clean = p === end && p > s; // one trailing slash is fine
        else if (b[seg] === 0x2e && (len === 1 || (len === 2 && b[seg + 1] === 0x2e)))
          clean = false;
        seg = p + 1;
      }
    }
    if (!clean) return cleanEntryName(decodeString(b, s, end, e.nameF));
    if (b[end - 1] === 0x2f) end--;
    return b.toString(e.nameF & S_NONASCII ? "utf8" : "latin1", s, end);
  }

  private ensure(path: string, type: NodeType): TocNode {
    let n = this.nodes.get(path);
    if (n) {
      if (n.type === "dir" && type !== "dir" && n.kids && n.kids.length > 0)
        throw new FormatError(`TOC entry ${JSON.stringify(path)} replaces a non-empty directory`);
      if (n.type === "dir") this.lastDir = n;
      return n;
    }
    const slash = path.lastIndexOf("/");
    let parent: TocNode | undefined;
    if (slash < 0) parent = this.root;
    else {
      // TOC order keeps a directory's entries together: look near the last directory first.
      let d: TocNode | undefined = this.lastDir;
      while (d && d.path.length > slash) d = d.parent;
      if (d && d.path.length === slash && path.startsWith(d.path)) parent = d;
      else {
        const parentPath = path.slice(0, slash);
        parent = this.nodes.get(parentPath) ?? this.ensure(parentPath, "dir");
      }
    }
    if (parent.type !== "dir")
      throw new FormatError(`TOC entry ${JSON.stringify(path)} is under a non-directory`);
    n = new TocNode(this, path, type, parent);
    if (type === "dir") {
      n.mode = 0o755;
      this.lastDir = n;
    }
    if (parent.kids) parent.kids.push(n);
    else parent.kids = [n];
    this.nodes.set(path, n);
    return n;
  }

  private finish(tocOffset: number): void {
    this.cNext.fill(tocOffset, this.pendingFrom, this.count);
    this.pendingFrom = this.count;
    if (!this.landmarkSeen) this.prioritized = [];
    for (const n of this.nodes.values()) {
      if (n.type !== "reg" || n.size === 0) continue;
      this.validateChunks(n, tocOffset);
    }
    for (const h of this.hardlinks) {
      let t: Node | undefined = this.nodes.get(cleanEntryName(h.linkName));
      for (let depth = 0; t?.type === "hardlink" && depth < 64; depth++)
        t = t.target ?? this.nodes.get(cleanEntryName(t.linkName));
      if (!t || t.type === "hardlink")
        throw new FormatError(
          `hardlink ${JSON.stringify(h.path)} points to missing ${JSON.stringify(h.linkName)}`,
        );
      h.target = t;
      t.numLink++;
    }
  }

  /** Chunks must tile the file exactly and point inside the blob's payload area. */
  private validateChunks(n: TocNode, tocOffset: number): void {
    let pos = 0;
    for (let k = n.cf; k < n.cf + n.cc; k++) {
      if (this.cChunkOffset[k] !== pos)
        throw new FormatError(`${n.path}: chunks do not tile the file (gap or overlap at ${pos})`);
      const size = this.cChunkSize[k];
      if (size <= 0) throw new FormatError(`${n.path}: chunk at ${pos} is empty`);
      const off = this.cOffset[k];
      if (off <= 0 || off >= tocOffset || this.cNext[k] <= off)
        throw new FormatError(`${n.path}: chunk at ${pos} has an invalid blob offset ${off}`);
      pos += size;
    }
    if (pos !== n.size) throw new FormatError(`${n.path}: chunks cover ${pos} bytes of ${n.size}`);
  }

  /** The chunk refs of records [cf, cf + cc). */
  chunkRefs(cf: number, cc: number): ChunkRef[] {
    const out: ChunkRef[] = [];
    let scratch: EntryScratch | undefined;
    for (let k = cf; k < cf + cc; k++) {
      scratch ??= new Scratch();
      rescanEntry(this.bytes, this.entryStart[this.cEntry[k]], scratch);
      const d = decodeString(
        this.bytes,
        scratch.chunkDigestS,
        scratch.chunkDigestE,
        scratch.chunkDigestF,
      );
      out.push({
        offset: this.cOffset[k],
        nextOffset: this.cNext[k],
        innerOffset: this.cInner[k],
        chunkOffset: this.cChunkOffset[k],
        chunkSize: this.cChunkSize[k],
        chunkDigest: d || undefined,
      });
    }
    return out;
  }

  /** The details of entry i that nodes decode on first use. */
  details(i: number): Details {
    if (i < 0)
      return { modtime: "", devMajor: 0, devMinor: 0, xattrs: {}, digest: "", entry: undefined };
    const e = new Scratch();
    rescanEntry(this.bytes, this.entryStart[i], e);
    const b = this.bytes;
    return {
      modtime: decodeString(b, e.modtimeS, e.modtimeE, e.modtimeF),
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      xattrs:
        e.xattrsS >= 0
          ? (JSON.parse(b.toString("utf8", e.xattrsS, e.xattrsE)) as Record<string, string>)
          : {},
      digest: decodeString(b, e.digestS, e.digestE, e.digestF),
      entry: undefined,
    };
  }

  /** Entry i as JSON.parse gives it. */
  rawEntry(i: number): TocEntry {
    const e = new Scratch();
    rescanEntry(this.bytes, this.entryStart[i], e);
    return JSON.parse(this.bytes.toString("utf8", e.start, e.end)) as TocEntry;
  }
}

interface Details {
  modtime: string;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, string>;
  digest: string;
  entry: TocEntry | undefined;
}

/** A node of a TocIndex: the cheap fields are set at build, the rest decoded on use. */
export class TocNode implements Node {
  size = 0;
  mode = 0;
  uid = 0;
  gid = 0;
  userName = "";
  groupName = "";
  linkName = "";
  numLink = 1;
  target: Node | undefined = undefined;
  /** Index of the TOC entry that defines the node; -1 for implicit directories. */
  i = -1;
  /** Children in TOC order (directories). */
  kids: TocNode[] | undefined = undefined;
  /** Chunk records [cf, cf + cc) of the index. */
  cf = 0;
  cc = 0;
  details: Details | undefined = undefined;
  private childMap: Map<string, Node> | undefined = undefined;
  private refs: ChunkRef[] | undefined = undefined;

  constructor(
    private readonly index: TocIndex,
    readonly path: string,
    public type: NodeType,
    readonly parent: TocNode | undefined,
  ) {}

  private get d(): Details {
    if (this.details === undefined) this.details = this.index.details(this.i);
    return this.details;
  }

  get modtime(): string {
    return this.d.modtime;
  }
  get devMajor(): number {
    return this.d.devMajor;
  }
  get devMinor(): number {
    return this.d.devMinor;
  }
  get xattrs(): Record<string, string> {
    return this.d.xattrs;
  }
  get digest(): string {
    return this.d.digest;
  }
  get entry(): TocEntry | undefined {
    if (this.i < 0) return undefined;
    const d = this.d;
    if (d.entry === undefined) d.entry = this.index.rawEntry(this.i);
    return d.entry;
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
      for (const k of this.kids ?? []) m.set(k.path.slice(skip), k);
      this.childMap = m;
    }
    return this.childMap;
  }
}
