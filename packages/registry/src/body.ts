import type { Readable } from "node:stream";
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
