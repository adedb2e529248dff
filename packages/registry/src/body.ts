import { Readable } from "node:stream";
import { RegistryError } from "./errors.js";
import { countBytes, type RegistryStats } from "./stats.js";

/** Response bodies as undici hands them out. */
export type Body = Readable & { dump?(opts?: { limit?: number }): Promise<void> };

/**
 * Reads a whole body, refusing more than `limit` bytes so a misbehaving server cannot make
 * us buffer a blob. Received bytes are counted into the stats sinks.
 */
export async function readBody(
  body: Body,
  limit: number,
  stats: readonly (RegistryStats | undefined)[],
  subject: string,
  /** Bytes the response promised: an early end is then reported as a short body. */
  expected?: number,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      n += chunk.length;
      countBytes(stats, chunk.length);
      if (n > limit) {
        discardBody(body);
        throw new RegistryError(subject, `response larger than the expected ${limit} bytes`, {
          kind: "protocol",
        });
      }
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof RegistryError || expected === undefined || n >= expected) throw e;
    // The connection died before the promised length: say so, and let the caller retry.
    throw new RegistryError(subject, `body shorter than promised (${n} of ${expected} bytes)`, {
      kind: "network",
      retryable: true,
      cause: e,
    });
  }
  return Buffer.concat(chunks, n);
}

/**
 * Drops a body without reading it: the connection is closed rather than drained, so an
 * unwanted blob is never downloaded. Errors of the dying stream are swallowed.
 */
export function discardBody(body: Body): void {
  body.on("error", () => {});
  if (!body.destroyed) body.destroy();
}

/**
 * Reads a small error body; tolerates a body that breaks off (distribution's 416 promises
 * the blob's length, sends 33 bytes and closes). Returns what arrived.
 */
export async function readErrorBody(
  body: Body,
  stats: readonly (RegistryStats | undefined)[],
): Promise<string> {
  const limit = 64 * 1024;
  const chunks: Buffer[] = [];
  let n = 0;
  // An error body that stalls must not hold the caller for the whole body timeout.
  const timer = setTimeout(() => discardBody(body), 5_000);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      countBytes(stats, chunk.length);
      chunks.push(chunk);
      n += chunk.length;
      if (n >= limit) break;
    }
  } catch {
    // A truncated error body is still an error response; keep what we have.
  } finally {
    clearTimeout(timer);
    discardBody(body);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The slowest transfer accepted: a body below it ends in a retry, then a clear error. */
export interface TransferFloor {
  /** Average rate a body must keep (bytes per second; 0 disables the floor). */
  minBytesPerSecond: number;
  /** The rate is averaged over windows this long (ms). */
  windowMs: number;
}

/**
 * A body that fails with a retryable RegistryError (kind "timeout", code SLOW_TRANSFER) when
 * fewer than the floor's bytes arrive in a window. Undici's body timeout only fires on
 * silence, so a server dripping a byte a second would otherwise hold us forever. Only time
 * spent waiting for the network counts: while the consumer is behind (the stream paused by
 * backpressure) the clock stops, so a slow consumer is never blamed on the server.
 */
export function meterBody(
  body: Body,
  subject: string,
  floor: TransferFloor,
  onClose?: () => void,
): Body {
  if (!(floor.minBytesPerSecond > 0 && floor.windowMs > 0)) {
    if (onClose) body.once("close", onClose);
    return body;
  }
  return new MeteredBody(body, subject, floor, onClose);
}

class MeteredBody extends Readable {
  private readonly need: number;
  private windowBytes = 0;
  /** Network time spent in the current window before the current flowing period. */
  private windowElapsed = 0;
  private flowingSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly raw: Body,
    private readonly subject: string,
    private readonly floor: TransferFloor,
    private readonly onClose?: () => void,
  ) {
    // Room for a few socket reads, so backpressure does not pause the socket on every chunk.
    super({ highWaterMark: 256 << 10 });
    this.need = (floor.minBytesPerSecond * floor.windowMs) / 1000;
    raw.on("data", (chunk: Buffer) => {
      this.windowBytes += chunk.length;
      if (!this.push(chunk)) this.stop();
    });
    raw.pause();
    raw.once("end", () => {
      this.stop();
      this.push(null);
    });
    raw.once("error", (e) => this.destroy(e));
  }

  override _read(): void {
    if (this.flowingSince !== undefined || this.raw.readableEnded) return;
    this.flowingSince = performance.now();
    this.arm(this.floor.windowMs - this.windowElapsed);
    this.raw.resume();
  }

  /** The consumer is behind (or the body ended): stop the clock. */
  private stop(): void {
    this.raw.pause();
    if (this.flowingSince === undefined) return;
    this.windowElapsed += performance.now() - this.flowingSince;
    this.flowingSince = undefined;
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.windowEnd(), Math.max(0, ms));
  }

  private windowEnd(): void {
    if (this.windowBytes < this.need) {
      const secs = this.floor.windowMs / 1000;
      this.destroy(
        new RegistryError(
          this.subject,
          `transfer too slow: ${this.windowBytes} bytes in ${secs} s (floor ${this.floor.minBytesPerSecond} bytes/s)`,
          { kind: "timeout", code: "SLOW_TRANSFER", retryable: true },
        ),
      );
      return;
    }
    this.windowBytes = 0;
    this.windowElapsed = 0;
    this.flowingSince = performance.now();
    this.arm(this.floor.windowMs);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearTimeout(this.timer);
    discardBody(this.raw);
    this.onClose?.();
    cb(err);
  }
}
