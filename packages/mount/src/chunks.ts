import type { ChunkRef, LayerReader, Node } from "@seekable/format";

/** A chunk of one layer's file: where it is and who reads it. */
export interface ChunkItem {
  key: string;
  reader: LayerReader;
  node: Node;
  ref: ChunkRef;
}

/**
 * Verified chunks by key, shared by on-demand reads and read-ahead: a chunk being
 * fetched is fetched once, however many reads want it, and recent chunks stay in a small
 * LRU so consecutive kernel reads (128 KiB each) of one chunk cost no cache look-up.
 */
export class ChunkPool {
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private readonly recent = new Map<string, Uint8Array>();
  private recentBytes = 0;
  /** Fetches in progress that are on-demand reads (the background fetch yields to them). */
  active = 0;
  lastActive = 0;

  constructor(
    private readonly maxRecentBytes = 64 << 20,
    /** Waits for a pending prefetch that covers the chunk, so it is not fetched twice. */
    private readonly before?: (item: ChunkItem) => Promise<void> | undefined,
  ) {}

  /** Known locally, or being fetched already. */
  has(key: string): boolean {
    return this.recent.has(key) || this.inflight.has(key);
  }

  /** The chunks' bytes when every one is in the recent set (the common case of a hot file). */
  peek(items: ChunkItem[]): Uint8Array[] | undefined {
    const out: Uint8Array[] = [];
    for (const it of items) {
      const hit = this.recent.get(it.key);
      if (!hit) return undefined;
      out.push(hit);
    }
    return out;
  }

  /** The chunks' verified bytes; missing ones fetched together in one reader call per layer. */
  async get(items: ChunkItem[], onDemand: boolean, signal?: AbortSignal): Promise<Uint8Array[]> {
    if (onDemand) this.active++;
    try {
      const out: Promise<Uint8Array>[] = [];
      const missing: ChunkItem[] = [];
      for (const it of items) {
        const hit = this.recent.get(it.key);
        if (hit) {
          this.recent.delete(it.key);
          this.recent.set(it.key, hit);
          out.push(Promise.resolve(hit));
          continue;
        }
        const p = this.inflight.get(it.key);
        if (p) out.push(p);
        else {
          missing.push(it);
          out.push(undefined as unknown as Promise<Uint8Array>);
        }
      }
      if (missing.length > 0) {
        const batch = this.fetch(missing, signal);
        let k = 0;
        for (let i = 0; i < out.length; i++) {
          if (out[i] !== undefined) continue;
          const it = missing[k];
          const idx = k++;
          const p = batch.then((datas) => datas[idx]);
          p.catch(() => {});
          this.inflight.set(it.key, p);
          out[i] = p;
          void p.then(
            (data) => {
              this.inflight.delete(it.key);
              this.remember(it.key, data);
            },
            () => this.inflight.delete(it.key),
          );
        }
      }
      return await Promise.all(out);
    } finally {
      if (onDemand) {
        this.active--;
        this.lastActive = Date.now();
      }
    }
  }

  private async fetch(items: ChunkItem[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const waits = items.map((it) => this.before?.(it)).filter((p) => p !== undefined);
    if (waits.length > 0) await Promise.allSettled(waits);
    // Chunks of one file of one layer go in one reader call (one source.read: coalesced).
    const groups = new Map<string, number[]>();
    items.forEach((it, i) => {
      const g = `${it.key.slice(0, it.key.indexOf(":"))}:${it.node.path}`;
      const list = groups.get(g) ?? [];
      list.push(i);
      groups.set(g, list);
    });
    const out: Uint8Array[] = new Array(items.length);
    await Promise.all(
      [...groups.values()].map(async (idx) => {
        const first = items[idx[0]];
        const datas = await first.reader.readChunks(
          first.node,
          idx.map((i) => items[i].ref),
          signal,
        );
        idx.forEach((i, k) => {
          out[i] = datas[k];
        });
      }),
    );
    return out;
  }

  private remember(key: string, data: Uint8Array): void {
    if (data.length > this.maxRecentBytes || this.recent.has(key)) return;
    this.recent.set(key, data);
    this.recentBytes += data.length;
    for (const [k, v] of this.recent) {
      if (this.recentBytes <= this.maxRecentBytes) break;
      this.recent.delete(k);
      this.recentBytes -= v.length;
    }
  }
}
