import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { SeekableError } from "./errors.js";

const guarded = new WeakSet<Writable>();

/**
 * A stream error must surface as a rejected write, never as an "Unhandled 'error' event"
 * crash: a listener stays on the stream, and the error is read back from `errored`.
 */
function guard(out: Writable): void {
  if (guarded.has(out)) return;
  guarded.add(out);
  out.on("error", () => {});
}

function closedError(out: Writable): Error {
  return (
    out.errored ??
    new SeekableError("the output was closed before everything was written", "system")
  );
}

/**
 * Writes one chunk with backpressure and error handling: resolves once the stream can take
 * more, rejects with the stream's error (ENOSPC, EPIPE, ...) or when it closes first.
 * Every stream write in seekable goes through here (and `endStream`).
 */
export async function writeChunk(out: Writable, chunk: Uint8Array): Promise<void> {
  guard(out);
  if (out.destroyed || out.errored || out.writableEnded) throw closedError(out);
  if (out.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    // The error comes from the event itself: process.stdout/stderr "un-destroy" themselves
    // before emitting it, so `errored` is already clear by then.
    const done = (err?: unknown) => {
      out.off("drain", done);
      out.off("close", done);
      out.off("error", done);
      if (err instanceof Error) reject(err);
      else if (out.errored || out.destroyed) reject(closedError(out));
      else resolve();
    };
    out.on("drain", done);
    out.on("close", done);
    out.on("error", done);
  });
}

/** Ends a stream and waits until everything written is flushed; rejects on its error. */
export async function endStream(out: Writable): Promise<void> {
  guard(out);
  if (out.errored) throw out.errored;
  out.end();
  await finished(out, { readable: false });
}
