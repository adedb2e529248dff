import type { ErrorKind } from "@seekable/format";
import { SeekableError } from "@seekable/format";

/** What went wrong, coarse enough for a CLI to choose an exit code or a fallback. */
export type RegistryErrorKind = Extract<
  ErrorKind,
  | "not-found"
  | "unauthorized"
  | "denied"
  | "verification"
  | "unsupported"
  | "range"
  | "timeout"
  | "network"
  | "protocol"
  | "http"
  | "usage"
>;

export interface RegistryErrorOptions {
  kind: RegistryErrorKind;
  status?: number;
  /** The registry's error code (e.g. MANIFEST_UNKNOWN) or one of ours (e.g. RANGE_IGNORED). */
  code?: string;
  /** Whether trying the same request again may succeed. */
  retryable?: boolean;
  /** Server-requested delay before the next attempt (Retry-After). */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * Every failure of this package. The message is one line: "<subject>: <cause>", where the
 * subject names the reference or URL, so the CLI can print it as is.
 */
export class RegistryError extends SeekableError {
  override readonly name = "RegistryError";
  readonly subject: string;
  readonly reason: string;
  declare readonly kind: RegistryErrorKind;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(subject: string, reason: string, options: RegistryErrorOptions) {
    super(
      `${subject}: ${oneLine(reason)}`,
      options.kind,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.subject = subject;
    this.reason = oneLine(reason);
    this.status = options.status;
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The same error for another subject (e.g. a blob URL turned into the reference a user typed). */
  withReason(reason: string, extra: Partial<RegistryErrorOptions> = {}): RegistryError {
    return new RegistryError(this.subject, reason, {
      kind: this.kind,
      status: this.status,
      code: this.code,
      retryable: this.retryable,
      retryAfterMs: this.retryAfterMs,
      cause: this.cause,
      ...extra,
    });
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

export function isRegistryError(e: unknown, kind?: RegistryErrorKind): e is RegistryError {
  return e instanceof RegistryError && (kind === undefined || e.kind === kind);
}
