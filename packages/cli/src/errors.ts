import { FormatError } from "@seekable/format";

/** A failure of the operation that the user must see as one line (exit 1). */
export class CliError extends Error {
  override readonly name = "CliError";
  /** `standalone`: the message names its subject itself; no input prefix is added. */
  constructor(
    message: string,
    readonly standalone = false,
    options?: ErrorOptions,
  ) {
    super(message, options);
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

/**
 * For `--debug`: the error's stack, then each `cause`'s ("Caused by: ..."), so an error
 * re-thrown with context still shows where it began.
 */
export function describeStack(e: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = e;
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    seen.add(cur);
    const text = cur instanceof Error ? (cur.stack ?? `${cur.name}: ${cur.message}`) : String(cur);
    parts.push(parts.length === 0 ? text : `Caused by: ${text}`);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join("\n");
}
