/**
 * An error caused by the input (bad tar, bad blob, digest mismatch), as opposed to a bug.
 * The CLI prints its message as one line, without a stack trace. The error it was made
 * from, if any, is its `cause` (printed with `--debug`).
 */
export class FormatError extends Error {
  override readonly name: string = "FormatError";
}

export class VerificationError extends FormatError {
  override readonly name: string = "VerificationError";
}

export class NotFoundError extends FormatError {
  override readonly name: string = "NotFoundError";
}

/**
 * The blob has no eStargz (or legacy stargz) footer: it is not an eStargz blob at all, as
 * opposed to a damaged one. Readers that can use a plain tar.gz fall back on this class only.
 */
export class NotEStargzError extends FormatError {
  override readonly name: string = "NotEStargzError";
}
