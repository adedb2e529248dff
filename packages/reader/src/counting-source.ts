import type { ByteRange, RangeSource } from "@seekable/format";
import type { ReadStats } from "./stats.js";

/**
 * Counts reads of a source that does not count itself (a local file: one request per
 * range). Registry sources count real HTTP requests and are not wrapped.
 */
export class CountingSource implements RangeSource {
  constructor(
    private readonly inner: RangeSource,
    private readonly stats: ReadStats,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  async read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const out = await this.inner.read(ranges, signal);
    this.stats.requests += ranges.length;
    for (const r of ranges) this.stats.bytesFetched += r.length;
    return out;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
