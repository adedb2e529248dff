import type { ChunkRef, LayerReader, Node } from "@seekable/format";
import { ByteLru } from "@seekable/reader";
import { LinkEstimate } from "./link-estimate.js";
import { type Member, MemberIndex, pickNeighbours } from "./neighbours.js";

/** A chunk of one layer's file: where it is and who reads it. */
export interface ChunkItem {
  key: string;
  reader: LayerReader;
  node: Node;
  ref: ChunkRef;
}

/** The pool's key of a chunk of layer `layer` (index in the image, bottom first). */
export function chunkKey(layer: number | string, ref: ChunkRef): string {
  return `${layer}:${ref.offset}:${ref.innerOffset}`;
}

const layerOf = (key: string) => key.slice(0, key.indexOf(":"));
const dirOf = (path: string) => path.slice(0, Math.max(0, path.lastIndexOf("/")));

export interface NeighbourOptions {
  /** Bring neighbours along with on-demand misses (default true). */
  enabled?: boolean;
  /** The registry link as measured so far (one per pool by default). */
  link?: LinkEstimate;
  /**
   * Fetched-but-unused neighbour bytes allowed at any time, as a share of the lower bound so
   * far (every layer's footer and TOC plus the members read); default 0.15.
   */
  spareRatio?: number;
  /** Neighbour budgets below this are not worth a look (default 512 bytes). */
  minBudget?: number;
  /**
   * A "small" file's compressed size (default 32 KiB): only misses on small files bring
   * neighbours, and only small neighbours come.
   */
  small?: number;
  /** How far from a miss, in compressed bytes, neighbours are looked for (default 16 KiB). */
  reach?: number;
}

/**
 * Verified chunks by key, shared by on-demand reads and read-ahead: a chunk being
 * fetched is fetched once, however many reads want it, and recent chunks stay in a small
 * LRU so consecutive kernel reads (128 KiB each) of one chunk cost no cache look-up.
 *
 * A miss brings neighbours along when that costs less than another round trip: the
 * members that follow in blob order (the same directory's small files first), up to the
 * link's bandwidth-delay product, and never more unused bytes than `spareRatio` of what
 * was read. Neighbours are verified like any other chunk, each on its own (a bad one fails
 * only the reads that want it), and wait in flight where a read that wants them joins.
 */
export class ChunkPool {
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  /** Recently used verified chunks, by key. */
  private readonly recent: ByteLru<string, Uint8Array>;
  /** Fetches in progress that are on-demand reads (the background fetch yields to them). */
  active = 0;
  lastActive = 0;

  readonly link: LinkEstimate;
  private readonly neighbours: boolean;
  private readonly spareRatio: number;
  private readonly minBudget: number;
  private readonly small: number;
  private readonly reach: number;

  /** Footer + TOC bytes of the layers read through this pool. */
  private baseBytes = 0;
  private readonly layers = new Set<LayerReader>();
  /** Member bytes read on demand, and neighbour bytes once a read wanted them. */
  usedBytes = 0;
  /** Neighbour bytes fetched that no read has wanted (yet). */
  unusedBytes = 0;
  private readonly readFiles = new WeakSet<Node>();
  /** Files read per directory. */
  private readonly dirReads = new Map<string, number>();
  /** Neighbour chunks not yet wanted by a read: key -> their share of member bytes. */
  private readonly speculative = new Map<string, number>();

  constructor(
    maxRecentBytes = 64 << 20,
    /** Waits for a pending prefetch that covers the chunk, so it is not fetched twice. */
    private readonly before?: (item: ChunkItem) => Promise<void> | undefined,
    opts: NeighbourOptions = {},
  ) {
    this.recent = new ByteLru(maxRecentBytes);
    this.link = opts.link ?? new LinkEstimate();
    this.neighbours = opts.enabled ?? true;
    this.spareRatio = opts.spareRatio ?? 0.15;
    this.minBudget = opts.minBudget ?? 512;
    this.small = opts.small ?? 32 << 10;
    this.reach = opts.reach ?? 16 << 10;
  }

  /** Counts a layer's footer and TOC in the lower bound the unused bytes are held to. */
  addLayer(reader: LayerReader): void {
    if (this.layers.has(reader)) return;
    this.layers.add(reader);
    this.baseBytes += reader.source.size - reader.footer.tocOffset;
  }

  /** Neighbour bytes a miss may add now. */
  neighbourBudget(): number {
    const spare = this.spareRatio * (this.baseBytes + this.usedBytes) - this.unusedBytes;
    return Math.max(0, Math.min(this.link.bandwidthDelay, spare));
  }

  /** Known locally, or being fetched already. */
  has(key: string): boolean {
    return this.recent.has(key) || this.inflight.has(key);
  }

  /** The chunks' bytes when every one is in the recent set (the common case of a hot file). */
  peek(items: ChunkItem[]): Uint8Array[] | undefined {
    const out: Uint8Array[] = [];
    for (const it of items) {
      const hit = this.recent.peek(it.key);
      if (!hit) return undefined;
      out.push(hit);
    }
    for (const it of items) this.wanted(it);
    return out;
  }

  /** The chunks' verified bytes; missing ones fetched together in one reader call per layer. */
  async get(items: ChunkItem[], onDemand: boolean, signal?: AbortSignal): Promise<Uint8Array[]> {
    if (onDemand) this.active++;
    try {
      const out: (Promise<Uint8Array> | number)[] = [];
      const missing: ChunkItem[] = [];
      // A chunk named twice in one call (a file listed twice) is fetched and inflated once.
      const slot = new Map<string, number>();
      for (const it of items) {
        if (onDemand) this.wanted(it);
        const hit = this.recent.get(it.key);
        if (hit) {
          out.push(Promise.resolve(hit));
          continue;
        }
        const p = this.inflight.get(it.key);
        if (p) out.push(p);
        else {
          let k = slot.get(it.key);
          if (k === undefined) {
            k = missing.push(it) - 1;
            slot.set(it.key, k);
          }
          out.push(k);
        }
      }
      if (missing.length > 0) {
        const batch = this.fetch(missing, onDemand, signal);
        const fetched = missing.map((it, idx) => {
          const p = batch.then((datas) => datas[idx]);
          this.track(it.key, p);
          return p;
        });
        for (let i = 0; i < out.length; i++) {
          const k = out[i];
          if (typeof k === "number") out[i] = fetched[k];
        }
      }
      return await Promise.all(out as Promise<Uint8Array>[]);
    } finally {
      if (onDemand) {
        this.active--;
        this.lastActive = Date.now();
      }
    }
  }

  /**
   * Fetches chunks a read will probably want (a guess from what was read: the modules a
   * program imports), in one reader call per layer, as far as the neighbour budget allows:
   * their bytes count as unused until a read wants them. Returns the items taken and when
   * their fetch has settled.
   */
  speculate(items: ChunkItem[]): { taken: ChunkItem[]; done: Promise<void> } {
    const fresh = items.filter((it) => !this.has(it.key) && this.before?.(it) === undefined);
    const perMember = new Map<number, number>();
    for (const it of fresh) perMember.set(it.ref.offset, (perMember.get(it.ref.offset) ?? 0) + 1);
    let budget = this.neighbourBudget();
    const taken: ChunkItem[] = [];
    for (const it of fresh) {
      const share = (it.ref.nextOffset - it.ref.offset) / (perMember.get(it.ref.offset) ?? 1);
      if (share > budget) continue;
      budget -= share;
      this.speculative.set(it.key, share);
      this.unusedBytes += share;
      taken.push(it);
    }
    if (taken.length === 0) return { taken, done: Promise.resolve() };
    const done = this.get(taken, false).then(
      () => {},
      () => {
        // Reads fetch again; what failed no longer holds the budget.
        for (const it of taken) {
          const share = this.speculative.get(it.key);
          if (share === undefined || this.has(it.key)) continue;
          this.speculative.delete(it.key);
          this.unusedBytes -= share;
        }
      },
    );
    return { taken, done };
  }

  /** A read wants this chunk: if it came as a neighbour, its bytes were well spent. */
  private wanted(it: ChunkItem): void {
    if (!this.readFiles.has(it.node)) {
      this.readFiles.add(it.node);
      const dir = dirOf(it.node.path);
      this.dirReads.set(dir, (this.dirReads.get(dir) ?? 0) + 1);
    }
    const bytes = this.speculative.get(it.key);
    if (bytes === undefined) return;
    this.speculative.delete(it.key);
    this.unusedBytes -= bytes;
    this.usedBytes += bytes;
  }

  /**
   * Files read so far in `dir`, its parent and its subdirectories: the more, the likelier
   * the next read is near (a package being imported, not one configuration file).
   */
  private heat(dir: string): number {
    let n = (this.dirReads.get(dir) ?? 0) + (this.dirReads.get(dirOf(dir)) ?? 0);
    for (const [d, k] of this.dirReads) if (d !== dir && dirOf(d) === dir) n += k;
    return n;
  }

  private track(key: string, p: Promise<Uint8Array>): void {
    p.catch(() => {});
    this.inflight.set(key, p);
    void p.then(
      (data) => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
        this.remember(key, data);
      },
      () => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      },
    );
  }

  private async fetch(
    items: ChunkItem[],
    onDemand: boolean,
    signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    const waits = items.map((it) => this.before?.(it)).filter((p) => p !== undefined);
    if (waits.length > 0) await Promise.allSettled(waits);
    // One reader call per layer: one source.read (coalesced, multi-range where it can).
    const groups = new Map<LayerReader, number[]>();
    items.forEach((it, i) => {
      const list = groups.get(it.reader) ?? [];
      list.push(i);
      groups.set(it.reader, list);
    });
    const out: Uint8Array[] = new Array(items.length);
    await Promise.all(
      [...groups].map(async ([reader, idx]) => {
        const datas = await this.fetchLayer(
          reader,
          idx.map((i) => items[i]),
          onDemand,
          signal,
        );
        idx.forEach((i, k) => {
          out[i] = datas[k];
        });
      }),
    );
    return out;
  }

  /** Cached chunks from the cache; the rest, with neighbours on a miss, in one source.read. */
  private async fetchLayer(
    reader: LayerReader,
    items: ChunkItem[],
    onDemand: boolean,
    signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    const cache = reader.cache;
    const out: (Uint8Array | undefined)[] = await Promise.all(
      items.map(({ ref }) => (cache && ref.chunkDigest ? cache.get(ref.chunkDigest) : undefined)),
    );
    const missed = items.flatMap((_, k) => (out[k] ? [] : [k]));
    if (missed.length === 0) return out as Uint8Array[];
    const need = missed.map((k) => items[k]);

    const members = new Map<number, ChunkRef>();
    const counted = new Set<number>();
    let demandBytes = 0;
    for (const { key, ref } of need) {
      if (!members.has(ref.offset)) members.set(ref.offset, ref);
      // Speculative chunks count once a read wants them (see `wanted`).
      if (this.speculative.has(key) || counted.has(ref.offset)) continue;
      counted.add(ref.offset);
      demandBytes += ref.nextOffset - ref.offset;
    }
    this.usedBytes += demandBytes;
    const extra = onDemand && this.neighbours ? this.planNeighbours(reader, need) : [];
    for (const n of extra) if (!members.has(n.offset)) members.set(n.offset, n.ref);

    const list = [...members.values()];
    const bytes = list.reduce((a, c) => a + (c.nextOffset - c.offset), 0);
    const t0 = performance.now();
    let bufs: Uint8Array[];
    try {
      bufs = await reader.source.read(
        list.map((c) => ({ offset: c.offset, length: c.nextOffset - c.offset })),
        signal,
      );
    } catch (e) {
      for (const n of extra) n.fail(e);
      throw e;
    }
    this.link.observe(bytes, performance.now() - t0);
    const byOffset = new Map(list.map((c, k) => [c.offset, bufs[k]]));

    // What the read asked for first; neighbours after the answer, each on its own.
    try {
      for (const k of missed) {
        const { node, ref } = items[k];
        out[k] = await reader.verifiedChunk(byOffset.get(ref.offset) as Uint8Array, ref, node.path);
      }
    } finally {
      if (extra.length > 0) setImmediate(() => void settle(reader, extra, byOffset, cache));
    }
    for (const k of missed) {
      const { ref } = items[k];
      if (cache && ref.chunkDigest) await cache.put(ref.chunkDigest, out[k] as Uint8Array);
    }
    return out as Uint8Array[];
  }

  /**
   * Neighbours of a miss, registered in flight at once so that reads wanting them join
   * this fetch instead of starting their own.
   */
  private planNeighbours(reader: LayerReader, need: ChunkItem[]): Pending[] {
    const path = need[0].node.path;
    const dir = dirOf(path);
    // A first read in a directory brings a little; each read there before it, more.
    const budget = this.neighbourBudget() * Math.min(1, this.heat(dir) / 4);
    if (budget < this.minBudget) return [];
    const layer = layerOf(need[0].key);
    let from = Number.POSITIVE_INFINITY;
    let to = 0;
    for (const { ref } of need) {
      from = Math.min(from, ref.offset);
      to = Math.max(to, ref.nextOffset);
    }
    // Small files are read in clusters (a program's modules, a package's files); a large
    // one (a binary, a library) says little about what is read next.
    if (to - from > this.small) return [];
    const itemOf = (c: Member["chunks"][number]): ChunkItem => ({
      key: chunkKey(layer, c.ref),
      reader,
      node: c.node,
      ref: c.ref,
    });
    const picked = pickNeighbours(MemberIndex.of(reader), from, to, dir, {
      budget,
      maxMember: Math.min(this.small, budget / 2),
      reach: this.reach,
      skip: (m) =>
        m.chunks.some((c) => {
          const it = itemOf(c);
          return this.has(it.key) || this.before?.(it) !== undefined;
        }),
    });
    const out: Pending[] = [];
    for (const m of picked) {
      const share = (m.nextOffset - m.offset) / m.chunks.length;
      for (const c of m.chunks) {
        const it = itemOf(c);
        let done!: (d: Uint8Array) => void;
        let fail!: (e: unknown) => void;
        const p = new Promise<Uint8Array>((res, rej) => {
          done = res;
          fail = rej;
        });
        this.track(it.key, p);
        this.speculative.set(it.key, share);
        this.unusedBytes += share;
        out.push({ offset: m.offset, ref: c.ref, node: c.node, done, fail });
      }
    }
    return out;
  }

  private remember(key: string, data: Uint8Array): void {
    this.recent.add(key, data);
  }
}

/** Verifies each neighbour on its own: a bad one fails only the reads that want it. */
async function settle(
  reader: LayerReader,
  extra: Pending[],
  byOffset: Map<number, Uint8Array>,
  cache: LayerReader["cache"],
): Promise<void> {
  for (const n of extra) {
    try {
      const data = await reader.verifiedChunk(
        byOffset.get(n.ref.offset) as Uint8Array,
        n.ref,
        n.node.path,
      );
      n.done(data);
      if (cache && n.ref.chunkDigest)
        void Promise.resolve(cache.put(n.ref.chunkDigest, data)).catch(() => {});
    } catch (e) {
      n.fail(e);
    }
  }
}

/** A neighbour chunk in flight: settled once the fetch that carries it is answered. */
interface Pending {
  offset: number;
  ref: ChunkRef;
  node: Node;
  done(data: Uint8Array): void;
  fail(e: unknown): void;
}
