/**
 * An error caused by the input (bad tar, bad blob, digest mismatch), as opposed to a bug.
 * The CLI prints its message as one line, without a stack trace.
 */
export class FormatError extends Error {
  override readonly name = "FormatError";
}

export class VerificationError extends FormatError {}

export class NotFoundError extends FormatError {}
