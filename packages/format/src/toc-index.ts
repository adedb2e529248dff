import type { ChunkRef } from "./chunk.js";
import type { Node } from "./reader.js";
import type { TocEntry } from "./toc.js";
import { buildTocTables, DEFAULT_MAX_TOC_ENTRIES } from "./toc-build.js";
import {
  decodeString,
  type EntryScratch,
  rescanEntry,
  EntryScratch as Scratch,
  T_REG,
  TYPE_NAMES,
} from "./toc-scan.js";
import type { TocTables } from "./toc-tables.js";

export { DEFAULT_MAX_TOC_ENTRIES };

type NodeType = Node["type"];

/**
 * A TOC's file tree, read from the tables built in one pass over the JSON bytes
 * (toc-build.ts): node objects are made on first use (lookup, walk) and kept; strings are
 * decoded from the JSON when a node is made.
 */
export class TocIndex {
  /** Map-like view of the nodes by cleaned path (made on demand). */
  readonly nodes: NodeView;
  private readonly objs: (TocNode | undefined)[] = [];

  private constructor(private readonly t: TocTables) {
    this.nodes = new NodeView(this);
  }

  /** Builds the tree of TOC JSON `bytes`; `tocOffset` bounds chunk offsets. */
  static build(bytes: Buffer, tocOffset: number, maxEntries = DEFAULT_MAX_TOC_ENTRIES): TocIndex {
    return new TocIndex(buildTocTables(bytes, tocOffset, maxEntries));
  }

  get root(): TocNode {
    return this.node(0);
  }

  get count(): number {
    return this.t.count;
  }

  /** The slot at a cleaned path, or -1. */
  slotOf(clean: string): number {
    return this.t.slotOf(clean);
  }

  pathOf(k: number): string {
    return this.t.pathOf(k);
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
    return this.t.prioritized.map((k) => this.pathOf(k));
  }

  /** Fills a new node's fields from its slot and entry. */
  fill(n: TocNode, k: number): void {
    n.path = this.pathOf(k);
    n.type = TYPE_NAMES[this.t.nType[k]] as NodeType;
    n.size = this.t.nSize[k];
    n.numLink = 1 + this.t.nLinks[k];
    n.cf = this.t.nCf[k];
    n.cc = this.t.nCc[k];
    if (k === 0 && this.t.nEntry[0] < 0) n.mode = 0o755;
    const i = this.t.nEntry[k];
    const b = this.t.bytes;
    if (i < 0) {
      if (n.type === "dir") n.mode = 0o755;
      return;
    }
    const e = new Scratch();
    rescanEntry(b, this.t.entryStart[i], e);
    n.mode = e.mode;
    n.uid = e.uid;
    n.gid = e.gid;
    n.modtime = decodeString(b, e.modtimeS, e.modtimeE, e.modtimeF);
    n.linkName = decodeString(b, e.linkNameS, e.linkNameE, e.linkNameF);
    n.devMajor = e.devMajor;
    n.devMinor = e.devMinor;
    n.digest = decodeString(b, e.digestS, e.digestE, e.digestF);
    n.userName = this.nameFrom(this.t.nUser[k] - 1, i, e, true);
    n.groupName = this.nameFrom(this.t.nGroup[k] - 1, i, e, false);
  }

  private nameFrom(from: number, own: number, e: EntryScratch, user: boolean): string {
    if (from < 0) return "";
    if (from !== own) {
      e = new Scratch();
      rescanEntry(this.t.bytes, this.t.entryStart[from], e);
    }
    return user
      ? decodeString(this.t.bytes, e.userNameS, e.userNameE, e.userNameF)
      : decodeString(this.t.bytes, e.groupNameS, e.groupNameE, e.groupNameF);
  }

  targetOf(k: number): TocNode | undefined {
    const t = this.t.nTarget[k];
    return t === 0 ? undefined : this.node(t - 1);
  }

  /** Children of slot k, in TOC order. */
  *childSlots(k: number): Generator<number> {
    for (let c = this.t.nFirst[k]; c > 0; c = this.t.nNext[c - 1]) yield c - 1;
  }

  entryOf(k: number): number {
    return this.t.nEntry[k];
  }

  /** The chunk refs of records [cf, cf + cc). */
  chunkRefs(cf: number, cc: number): ChunkRef[] {
    const out: ChunkRef[] = [];
    const scratch = new Scratch();
    for (let r = cf; r < cf + cc; r++) {
      rescanEntry(this.t.bytes, this.t.entryStart[this.t.cEntry[r]], scratch);
      const d = decodeString(
        this.t.bytes,
        scratch.chunkDigestS,
        scratch.chunkDigestE,
        scratch.chunkDigestF,
      );
      out.push({
        offset: this.t.cOffset[r],
        nextOffset: this.t.cNext[r],
        innerOffset: this.t.cInner[r],
        chunkOffset: this.t.cChunkOffset[r],
        chunkSize: this.t.cChunkSize[r],
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
    const cap = this.t.cCount;
    const offset = new Float64Array(cap);
    const nextOffset = new Float64Array(cap);
    const slot = new Int32Array(cap);
    const nth = new Int32Array(cap);
    const { nType, nCf, nCc, cDigest, cOffset, cNext } = this.t;
    let n = 0;
    for (let k = 0; k < this.t.count; k++) {
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
    rescanEntry(this.t.bytes, this.t.entryStart[i], e);
    return e.xattrsS >= 0
      ? (JSON.parse(this.t.bytes.toString("utf8", e.xattrsS, e.xattrsE)) as Record<string, string>)
      : {};
  }

  /** Entry i as JSON.parse gives it. */
  rawEntry(i: number): TocEntry {
    const e = new Scratch();
    rescanEntry(this.t.bytes, this.t.entryStart[i], e);
    return JSON.parse(this.t.bytes.toString("utf8", e.start, e.end)) as TocEntry;
  }
}

/** Chunks as parallel arrays (see TocIndex.digestChunks); nth indexes the node's chunks. */
export interface ChunkTable {
  count: number;
  offset: Float64Array;
  nextOffset: Float64Array;
  slot: Int32Array;
  nth: Int32Array;
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
