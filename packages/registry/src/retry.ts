import { RegistryError } from "./errors.js";

export interface RetryPolicy {
  /** Total attempts including the first (default 5). */
  attempts: number;
  /** First backoff delay (default 100 ms); doubles per attempt. */
  minDelayMs: number;
  /** Backoff cap (default 10 s). */
  maxDelayMs: number;
  /** Longest Retry-After honoured; a longer one fails at once rather than stalling (default 60 s). */
  maxRetryAfterMs: number;
  /**
   * Attempts allowed when transfers are too slow (below the floor, past the deadline):
   * default 2, one retry on a fresh connection, since each such failure costs a whole window.
   */
  slowAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  minDelayMs: 100,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
  slowAttempts: 2,
};

/** 429 and 5xx are worth another try, except 501 (the server will never do it). */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

// Connection-level failures after which a fresh attempt may work.
const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
]);

export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === "string") return code;
  const cause = (e as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && cause !== e ? errorCode(cause) : undefined;
}

/** Turns a transport error into a RegistryError with a short cause and a retry verdict. */
export function classifyNetworkError(subject: string, e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  const code = errorCode(e);
  const message = (e as Error | undefined)?.message ?? String(e);
  const retryable = code !== undefined && RETRYABLE_CODES.has(code);
  const reason = (() => {
    switch (code) {
      case "UND_ERR_HEADERS_TIMEOUT":
        return "timed out waiting for response headers";
      case "UND_ERR_BODY_TIMEOUT":
        return "timed out waiting for response body";
      case "UND_ERR_CONNECT_TIMEOUT":
        return "timed out connecting";
      case "UND_ERR_RES_CONTENT_LENGTH_MISMATCH":
        return "body shorter than promised (connection closed early)";
      case "UND_ERR_SOCKET":
        return `connection closed (${message})`;
      case "ECONNRESET":
        return "connection reset";
      case "ECONNREFUSED":
        return "connection refused";
      case "ENOTFOUND":
        return "host not found";
      default:
        return tlsReason(code) ?? message;
    }
  })();
  const kind = code?.includes("TIMEOUT") || code === "ETIMEDOUT" ? "timeout" : "network";
  return new RegistryError(subject, reason, { kind, code, retryable, cause: e });
}

// OpenSSL's own text is a multi-part line with source paths: say what happened instead.
const CERT_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function tlsReason(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  if (CERT_CODES.has(code)) return `TLS certificate not accepted (${code})`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER")
    return "TLS handshake failed: the server does not speak TLS (plain HTTP?)";
  if (code.startsWith("ERR_SSL_"))
    return `TLS handshake failed (${code.slice(8).toLowerCase().replace(/_/g, " ")})`;
  return undefined;
}

/** Retry-After as delta seconds or an HTTP date; undefined when absent or unparseable. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Exponential backoff with jitter in [d/2, d): spreads clients that failed together. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const d = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** attempt);
  return d / 2 + random() * (d / 2);
}

/** Resolves after ms, or rejects with the signal's reason when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Codes of failures where the server was reached but sent too slowly (see body.ts). */
const SLOW_CODES = new Set(["SLOW_TRANSFER", "DEADLINE"]);

/**
 * The one retry decision for an operation, however many requests it takes (a blob download
 * resumes with Range after each failure, so it cannot be one closure): after each failure
 * call `failed(e)`, which throws the final error or waits before the next attempt.
 */
export class Retrier {
  private failures = 0;
  private slowFailures = 0;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly signal?: AbortSignal,
  ) {}

  async failed(e: unknown): Promise<void> {
    if (this.signal?.aborted) throw this.signal.reason;
    if (!(e instanceof RegistryError) || !e.retryable) throw e;
    this.failures++;
    if (e.code !== undefined && SLOW_CODES.has(e.code)) this.slowFailures++;
    if (e.retryAfterMs !== undefined && e.retryAfterMs > this.policy.maxRetryAfterMs) {
      throw e.withReason(
        `${e.reason}; server asks to retry after ${Math.ceil(e.retryAfterMs / 1000)} s`,
        { retryable: false },
      );
    }
    // A slow transfer costs a whole window per attempt: allow fewer of them.
    if (this.failures >= this.policy.attempts || this.slowFailures >= this.policy.slowAttempts) {
      const n = this.failures;
      throw e.withReason(n > 1 ? `${e.reason} after ${n} attempts` : e.reason, {
        retryable: false,
      });
    }
    await sleep(
      Math.max(e.retryAfterMs ?? 0, backoffDelay(this.failures - 1, this.policy)),
      this.signal,
    );
  }
}

/**
 * Runs fn until it succeeds, throws a non-retryable error, or attempts run out. The final
 * error says how many attempts were made. An abort is rethrown as the signal's reason.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  fn: (attempt: number) => Promise<T>,
): Promise<T> {
  const retrier = new Retrier(policy, signal);
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      await retrier.failed(e);
    }
  }
}
