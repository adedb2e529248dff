/**
 * What went wrong, coarse enough for the CLI to choose an exit code and wording, and for
 * callers to choose a fallback. Every package's errors are SeekableErrors with one of these.
 */
export type ErrorKind =
  /** The input is bad: a damaged or hostile blob, TOC, tar, manifest or profile. */
  | "input"
  /** Bytes did not match their digest. */
  | "verification"
  | "not-found"
  /** A resource limit refused the input (entries, bytes, depth). */
  | "limit"
  /** An argument is malformed (a reference, credentials, a range). */
  | "usage"
  /** The machine failed the operation: a temporary directory, a full disk. */
  | "system"
  // The registry's answers (see @seekable/registry RegistryError).
  | "unauthorized"
  | "denied"
  | "unsupported"
  | "range"
  | "timeout"
  | "network"
  | "protocol"
  | "http";

/**
 * The base of every error seekable raises on purpose. The message is one line that names
 * its subject, printed as is by the CLI; the error it was made from, if any, is its `cause`
 * (printed with `--debug`). Anything else that reaches the CLI is a bug.
 */
export class SeekableError extends Error {
  override readonly name: string = "SeekableError";
  readonly kind: ErrorKind;

  constructor(message: string, kind: ErrorKind, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

/** An error caused by the input (bad tar, bad blob, digest mismatch), as opposed to a bug. */
export class FormatError extends SeekableError {
  override readonly name: string = "FormatError";
  constructor(message: string, options?: ErrorOptions, kind: ErrorKind = "input") {
    super(message, kind, options);
  }
}

export class VerificationError extends FormatError {
  override readonly name: string = "VerificationError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, "verification");
  }
}

export class NotFoundError extends FormatError {
  override readonly name: string = "NotFoundError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, "not-found");
  }
}

/**
 * The blob has no eStargz (or legacy stargz) footer: it is not an eStargz blob at all, as
 * opposed to a damaged one. Readers that can use a plain tar.gz fall back on this class only.
 */
export class NotEStargzError extends FormatError {
  override readonly name: string = "NotEStargzError";
}

/** Refusal for a resource limit: never deferred, never retried. */
export class LimitError extends FormatError {
  override readonly name: string = "LimitError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, "limit");
  }
}

/** An error's message on one line: what every command and host prints of it. */
export function errorLine(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(/\s*\n\s*/g, " ");
}
