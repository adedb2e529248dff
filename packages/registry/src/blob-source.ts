import { type ByteRange, checkRange, type RangeSource } from "@seekable/format";
import { blobSubject, headBlob, type Repository, readBlobRanges } from "./blob.js";
import type { RegistryClient } from "./client.js";
import { coalesce, type Span } from "./coalesce.js";
import { RegistryError } from "./errors.js";
import { limiter } from "./limit.js";
import { newStats, type RegistryStats } from "./stats.js";

/**
 * Ranges closer than this are fetched as one span by default: one request with a few wasted
 * bytes beats two. Planners that reason about what a read brings along use the same figure.
 */
export const DEFAULT_GAP = 32 * 1024;

export interface BlobSourceOptions {
  /** Known size (from the descriptor); otherwise a HEAD asks the registry. */
  size?: number;
  /** Merge ranges closer than this many bytes into one span (default 32 KiB). */
  gap?: number;
  /** Never merge a gap into a span beyond this size (default 16 MiB). */
  maxSpan?: number;
  /** Spans per multi-range request (default 32); 1 disables multi-range. */
  maxRangesPerRequest?: number;
  /** Requests in flight per read (default 8). */
  concurrency?: number;
  signal?: AbortSignal;
}

const isMultiRefusal = (e: unknown) =>
  e instanceof RegistryError &&
  (e.code === "MULTI_RANGE_UNSUPPORTED" || e.code === "RANGE_IGNORED");

/**
 * A registry blob as a RangeSource. Each read coalesces nearby ranges, sends several spans
 * per request where the registry handles multi-range, and falls back to parallel single
 * ranges (remembered per registry) when it answers 400/501 or ignores the ranges.
 * Bytes are not verified here: the reader checks each chunk against the TOC.
 */
export class RegistryBlobSource implements RangeSource {
  /** This source's own requests and bytes (the client's stats hold every source's). */
  readonly stats: RegistryStats = newStats();
  private readonly gap: number;
  private readonly maxSpan: number;
  private readonly perRequest: number;
  private readonly concurrency: number;

  constructor(
    private readonly client: RegistryClient,
    readonly repository: Repository,
    readonly digest: string,
    readonly size: number,
    options: BlobSourceOptions = {},
  ) {
    this.gap = options.gap ?? DEFAULT_GAP;
    this.maxSpan = options.maxSpan ?? 16 << 20;
    this.perRequest = Math.max(1, options.maxRangesPerRequest ?? 32);
    this.concurrency = Math.max(1, options.concurrency ?? 8);
  }

  /** Opens a blob, asking its size with HEAD unless the options give it. */
  static async open(
    client: RegistryClient,
    repository: Repository,
    digest: string,
    options: BlobSourceOptions = {},
  ): Promise<RegistryBlobSource> {
    let size = options.size;
    if (size === undefined) {
      const info = await headBlob(client, repository, digest, { signal: options.signal });
      if (!info)
        throw new RegistryError(blobSubject(repository, digest), "blob unknown", {
          kind: "not-found",
          status: 404,
        });
      size = info.size;
    }
    return new RegistryBlobSource(client, repository, digest, size, options);
  }

  async read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]> {
    for (const r of ranges) checkRange(r, this.size);
    const out: Uint8Array[] = ranges.map(() => new Uint8Array(0));
    const spans = coalesce(ranges, this.gap, this.maxSpan);
    if (spans.length === 0) return out;
    // The first failure cancels the requests still in flight.
    const inner = new AbortController();
    const onAbort = () => inner.abort(signal?.reason);
    if (signal?.aborted) throw signal.reason;
    signal?.addEventListener("abort", onAbort, { once: true });
    const limit = limiter(this.concurrency);
    const quirks = this.client.hostQuirks(this.repository.registry);
    const place = (span: Span, data: Uint8Array) => {
      for (const i of span.members) {
        const r = ranges[i] as ByteRange;
        out[i] = data.subarray(r.offset - span.start, r.offset - span.start + r.length);
      }
    };
    const single = (span: Span) =>
      limit(async () => {
        const { data } = await this.fetch([span], inner.signal);
        place(span, data[0] as Uint8Array);
      });
    const group = async (g: Span[]) => {
      try {
        const { data } = await limit(() => this.fetch(g, inner.signal));
        quirks.multiRange = true;
        for (const [k, span] of g.entries()) place(span, data[k] as Uint8Array);
      } catch (e) {
        if (!isMultiRefusal(e)) throw e;
        quirks.multiRange = false;
        await Promise.all(g.map(single));
      }
    };
    const tasks: Promise<void>[] = [];
    if (spans.length > 1 && this.perRequest > 1 && quirks.multiRange !== false) {
      for (let i = 0; i < spans.length; i += this.perRequest)
        tasks.push(group(spans.slice(i, i + this.perRequest)));
    } else {
      tasks.push(...spans.map(single));
    }
    try {
      await Promise.all(
        tasks.map((t) =>
          t.catch((e) => {
            inner.abort(e);
            throw e;
          }),
        ),
      );
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return out;
  }

  private fetch(spans: Span[], signal: AbortSignal) {
    return readBlobRanges(
      this.client,
      this.repository,
      this.digest,
      spans.map((s) => ({ start: s.start, end: s.end })),
      { signal, stats: this.stats, size: this.size },
    );
  }
}
