import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describeSystemError, endStream, type ResettableSink, writeChunk } from "@seekable/format";
import { CliError } from "./errors.js";

const cleanups = new Set<() => Promise<void>>();

/** The output failed (disk full, read-only, closed pipe): one line naming the output. */
export class OutputError extends CliError {
  constructor(output: string, cause: unknown) {
    if (cause instanceof OutputError) {
      super(cause.message, true);
      return;
    }
    const why = cause instanceof Error ? describeSystemError(cause) : String(cause);
    super(`${output}: ${why}`, true);
  }
}

/** Removes temporary outputs when the process is interrupted: no partial file is left. */
export function installSignalCleanup(): void {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      void Promise.allSettled([...cleanups].map((f) => f())).then(() =>
        process.exit(sig === "SIGINT" ? 130 : 143),
      );
    });
  }
}

/**
 * Writes under a temporary name beside `path`; `commit` checks the bytes on disk against
 * the digest reported and renames, `discard` removes the temporary file.
 */
export class AtomicFileSink implements ResettableSink {
  private constructor(
    private handle: FileHandle,
    private tmp: string,
    private readonly path: string,
  ) {}
  private pos = 0;
  private readonly cleanup = () => this.discard();

  private static tmpName(path: string): string {
    return join(
      dirname(path),
      `.${basename(path)}.seekable-${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
    );
  }

  static async create(path: string): Promise<AtomicFileSink> {
    const tmp = AtomicFileSink.tmpName(path);
    const handle = await open(tmp, "wx").catch((e: NodeJS.ErrnoException) => {
      throw new OutputError(path, e.code === "ENOENT" ? "directory does not exist" : e);
    });
    const sink = new AtomicFileSink(handle, tmp, path);
    cleanups.add(sink.cleanup);
    return sink;
  }

  async write(data: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.handle.write(data, done, data.length - done, this.pos);
        done += bytesWritten;
        this.pos += bytesWritten;
      }
    } catch (e) {
      throw new OutputError(this.path, e);
    }
  }

  /** Starts over in a fresh temporary file: nothing written before can land in the new one. */
  async reset(): Promise<void> {
    const old = { handle: this.handle, tmp: this.tmp };
    const tmp = AtomicFileSink.tmpName(this.path);
    this.handle = await open(tmp, "wx").catch((e: unknown) => {
      throw new OutputError(this.path, e);
    });
    this.tmp = tmp;
    this.pos = 0;
    await old.handle.close().catch(() => {});
    await rm(old.tmp, { force: true });
  }

  /**
   * Renames the file into place once its bytes are the blob that was reported: `expected`
   * is re-read from disk and compared, a mismatch is an error and leaves no output.
   */
  async commit(expected?: { digest: string; size: number }): Promise<void> {
    try {
      await this.handle.sync();
      if (expected) {
        const { size } = await this.handle.stat();
        const h = createHash("sha256");
        await pipeline(createReadStream(this.tmp, { highWaterMark: 1 << 20 }), h);
        const digest = `sha256:${h.digest("hex")}`;
        if (size !== expected.size || digest !== expected.digest)
          throw new OutputError(
            this.path,
            `the bytes written (${digest}, ${size} bytes) are not the blob converted (${expected.digest}, ${expected.size} bytes)`,
          );
      }
      await this.handle.close();
      await rename(this.tmp, this.path);
    } catch (e) {
      throw new OutputError(this.path, e);
    }
    cleanups.delete(this.cleanup);
  }

  async discard(): Promise<void> {
    cleanups.delete(this.cleanup);
    await this.handle.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

/**
 * A stream output written in place, with no temporary name: stdout, or an existing device
 * or FIFO (/dev/null, /dev/full), which a rename would replace. Not resettable.
 */
export class StreamSink {
  private constructor(
    private readonly out: Writable,
    private readonly name: string,
  ) {}

  static stdout(): StreamSink {
    return new StreamSink(process.stdout, "stdout");
  }

  static async open(path: string): Promise<StreamSink> {
    const out = createWriteStream(path, { flags: "w" });
    try {
      await once(out, "open");
    } catch (e) {
      throw new OutputError(path, e);
    }
    return new StreamSink(out, path);
  }

  async write(data: Uint8Array): Promise<void> {
    await writeChunk(this.out, data).catch((e: unknown) => {
      throw new OutputError(this.name, e);
    });
  }

  /** Waits until everything written is flushed: the last write's error is seen too. */
  async end(): Promise<void> {
    if ((this.out as { isTTY?: boolean }).isTTY) return;
    await endStream(this.out).catch((e: unknown) => {
      throw new OutputError(this.name, e);
    });
  }

  close(): void {
    if (this.out !== process.stdout) this.out.destroy();
  }
}

/** Registers a temp path to delete on interruption; returns the unregister function. */
export function onInterrupt(f: () => Promise<void>): () => void {
  cleanups.add(f);
  return () => cleanups.delete(f);
}
