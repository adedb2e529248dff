import { type ErrorKind, isSystemError, SeekableError } from "@seekable/format";

/** A failure of the operation that the user must see as one line (exit 1). */
export class CliError extends SeekableError {
  override readonly name = "CliError";
  /** `standalone`: the message names its subject itself; no input prefix is added. */
  constructor(
    message: string,
    readonly standalone = false,
    options?: ErrorOptions & { kind?: ErrorKind },
  ) {
    super(message, options?.kind ?? "input", options);
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

/**
 * Whether an error was raised on purpose, with a message meant for the user: every package's
 * SeekableError, and a failed system call (ENOENT, EACCES, ENOSPC: it has a syscall). Anything
 * else (a TypeError, a Node ERR_* code) is a bug.
 */
export function isKnownError(e: unknown): boolean {
  return e instanceof SeekableError || isSystemError(e);
}

/**
 * The exit code of a failed command by what went wrong (the CLI contract: 1 the operation
 * failed; 2 a usage error, which commander reports itself). The libraries' "usage" kind (a
 * malformed reference, --creds text) is found while the command runs and exits 1 with it.
 */
export function exitCodeOf(_e: unknown): number {
  return 1;
}

/**
 * What the CLI prints for an error that ends a command: one line naming the input and the
 * cause; for an unknown error (a bug) a hint to run again with --debug on that line; with
 * --debug, the stack and its causes after it.
 */
export function errorReport(e: unknown, input: string | undefined, debug: boolean): string {
  let text = `seekable: ${describeError(e, input)}`;
  if (!isKnownError(e) && !debug) text += " (an unexpected error: --debug prints where)";
  text += "\n";
  if (debug) text += `${describeStack(e)}\n`;
  return text;
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
