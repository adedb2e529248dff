import { cleanEntryName, type LayerReader, PREFETCH_LANDMARK } from "@seekable/format";
import type { OpenedLayer } from "@seekable/reader";
import type { ChunkItem, ChunkPool } from "./chunks.js";

/** Paths of the regular files before `.prefetch.landmark` (none when there is no landmark). */
export function prioritizedPaths(reader: LayerReader): string[] {
  const entries = reader.toc.entries;
  const mark = entries.findIndex((e) => cleanEntryName(e.name) === PREFETCH_LANDMARK);
  if (mark < 0) return [];
  const out: string[] = [];
  for (const e of entries.slice(0, mark)) if (e.type === "reg") out.push(cleanEntryName(e.name));
  return out;
}

/**
 * The prioritized region of every eStargz layer, fetched in the background as soon as the
 * image is mounted: one reader prefetch per layer (one request when the region fits the
 * budget). A read of a chunk in a region still in flight waits for it instead of fetching
 * it again.
 */
export class PrioritizedPrefetch {
  private readonly pending = new Map<number, { offsets: Set<number>; done: Promise<void> }>();

  start(layers: OpenedLayer[], onError: (e: unknown) => void): Promise<void> {
    const all: Promise<void>[] = [];
    layers.forEach((l, index) => {
      if (!l.reader) return;
      const paths = prioritizedPaths(l.reader);
      if (paths.length === 0) return;
      const offsets = new Set<number>();
      for (const p of paths) {
        const n = l.reader.lookup(p);
        for (const c of (n && l.reader.resolve(n).chunks) ?? []) offsets.add(c.offset);
      }
      const budget = Number.MAX_SAFE_INTEGER; // one read: the region is laid out contiguously
      const done = l.reader
        .prefetch(paths, undefined, budget)
        .catch(onError)
        .finally(() => this.pending.delete(index));
      this.pending.set(index, { offsets, done });
      all.push(done);
    });
    return Promise.all(all).then(() => {});
  }

  /** The pending prefetch a chunk belongs to, if any. */
  covering(item: ChunkItem): Promise<void> | undefined {
    const layer = Number(item.key.slice(0, item.key.indexOf(":")));
    const p = this.pending.get(layer);
    return p?.offsets.has(item.ref.offset) ? p.done : undefined;
  }
}

/**
 * `--background-fetch`: every other chunk of every eStargz layer, in TOC order, in batches
 * of `batchBytes` (compressed), each started only when no on-demand read is in flight and
 * none ended in the last `quietMs`: on-demand reads wait at most for one batch.
 */
export async function backgroundFetch(
  layers: OpenedLayer[],
  pool: ChunkPool,
  opts: { signal: AbortSignal; batchBytes?: number; quietMs?: number },
): Promise<{ files: number }> {
  const batchBytes = opts.batchBytes ?? 4 << 20;
  const quietMs = opts.quietMs ?? 50;
  let files = 0;
  for (const l of layers) {
    const reader = l.reader;
    if (!reader?.cache) continue;
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      while (pool.active > 0 || Date.now() - pool.lastActive < quietMs) {
        if (opts.signal.aborted) return;
        await new Promise((r) => setTimeout(r, quietMs));
      }
      if (opts.signal.aborted) return;
      await reader.prefetch(batch, opts.signal, batchBytes);
      files += batch.length;
      batch = [];
      bytes = 0;
    };
    for (const n of reader.walk()) {
      if (opts.signal.aborted) return { files };
      if (n.type !== "reg" || n.size === 0) continue;
      batch.push(n.path);
      for (const c of n.chunks) bytes += c.nextOffset - c.offset;
      if (bytes >= batchBytes) await flush();
    }
    if (batch.length > 0) await flush();
  }
  return { files };
}
