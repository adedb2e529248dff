/** One observed fetch: bytes asked for and how long the reader call took. */
interface Sample {
  bytes: number;
  ms: number;
}

export interface LinkEstimateOptions {
  /** Round-trip time assumed before any sample (default 10 ms). */
  rttMs?: number;
  /** Throughput assumed before a transfer long enough to measure it (default 100 Mbit/s). */
  bytesPerMs?: number;
  /** Samples kept (default 32): old ones age out, so the estimate follows the link. */
  window?: number;
}

/**
 * The registry link as seen from the reader calls: round-trip time and throughput, so a
 * miss knows how many bytes cost less than another round trip (the bandwidth-delay
 * product). Every fetch gives a sample (bytes, elapsed). The round trip is the smallest
 * elapsed time minus its transfer time over the recent samples. Throughput is measured
 * from samples whose transfer took a visible part of the time (at least a quarter of a
 * round trip); a sample whose transfer hid inside the round trip only proves the link is at
 * least that fast, which lets the estimate grow from the default, a factor of about four
 * per fetch, until transfers become visible (like TCP's slow start).
 */
export class LinkEstimate {
  private readonly samples: Sample[] = [];
  private readonly window: number;
  private readonly defaultRtt: number;
  private readonly defaultRate: number;
  private rtt: number;
  private rate: number;

  constructor(opts: LinkEstimateOptions = {}) {
    this.defaultRtt = opts.rttMs ?? 10;
    this.defaultRate = opts.bytesPerMs ?? 12_500;
    this.window = opts.window ?? 32;
    this.rtt = this.defaultRtt;
    this.rate = this.defaultRate;
  }

  get rttMs(): number {
    return this.rtt;
  }

  get bytesPerMs(): number {
    return this.rate;
  }

  /** Bytes that take one round trip to transfer. */
  get bandwidthDelay(): number {
    return this.rtt * this.rate;
  }

  get sampleCount(): number {
    return this.samples.length;
  }

  /** A fetch of `bytes` (one request, or several in parallel) that took `ms`. */
  observe(bytes: number, ms: number): void {
    if (!(ms > 0) || !(bytes >= 0)) return;
    this.samples.push({ bytes, ms });
    if (this.samples.length > this.window) this.samples.shift();
    this.update();
  }

  private update(): void {
    // Round trip: the least latency seen once the (estimated) transfer time is taken out;
    // concurrent fetches only ever make a sample slower, so the minimum is the link's.
    let rtt = Number.POSITIVE_INFINITY;
    for (const s of this.samples)
      rtt = Math.min(rtt, Math.max(s.ms - s.bytes / this.rate, s.ms / 5));
    this.rtt = Math.max(0.05, rtt);
    let measured = 0;
    let atLeast = 0;
    for (const s of this.samples) {
      const transfer = s.ms - this.rtt;
      if (transfer >= this.rtt / 4) measured = Math.max(measured, s.bytes / transfer);
      else atLeast = Math.max(atLeast, s.bytes / (this.rtt / 4));
    }
    // The default stands until a visible transfer measures the link.
    this.rate = Math.max(measured > 0 ? measured : this.defaultRate, atLeast);
  }
}
