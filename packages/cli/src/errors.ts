import { FormatError } from "@seekable/format";

/** A failure of the operation that the user must see as one line (exit 1). */
export class CliError extends Error {
  override readonly name = "CliError";
  /** `standalone`: the message names its subject itself; no input prefix is added. */
  constructor(
    message: string,
    readonly standalone = false,
  ) {
    super(message);
  }
}

/** One line naming the input and the cause; stack only with --debug. */
export function describeError(e: unknown, input?: string): string {
  const err = e as NodeJS.ErrnoException;
  let msg: string;
  if (err?.code === "ENOENT" && err.path) msg = `${err.path}: no such file or directory`;
  else if (err?.code === "EACCES" && err.path) msg = `${err.path}: permission denied`;
  else if (err?.code === "EISDIR") msg = `${input ?? err.path}: is a directory`;
  else if (err?.code === "EPIPE") msg = "output closed";
  else msg = err?.message ?? String(e);
  msg = msg.replace(/\s*\n\s*/g, " ");
  if (
    input &&
    !(e instanceof CliError && e.standalone) &&
    !msg.startsWith(`${input}:`) &&
    !(err?.code === "ENOENT" || err?.code === "EACCES")
  )
    msg = `${input}: ${msg}`;
  return msg;
}

export function isUserError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return e instanceof CliError || e instanceof FormatError || typeof code === "string";
}
