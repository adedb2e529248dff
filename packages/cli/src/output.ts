import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ResettableSink } from "@seekable/format";

const cleanups = new Set<() => Promise<void>>();

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

/** Writes under a temporary name beside `path`; `commit` renames it, `discard` removes it. */
export class AtomicFileSink implements ResettableSink {
  private constructor(
    private readonly handle: FileHandle,
    private readonly tmp: string,
    private readonly path: string,
  ) {}
  private pos = 0;
  private readonly cleanup = () => this.discard();

  static async create(path: string): Promise<AtomicFileSink> {
    const tmp = join(
      dirname(path),
      `.${basename(path)}.seekable-${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
    );
    const handle = await open(tmp, "wx");
    const sink = new AtomicFileSink(handle, tmp, path);
    cleanups.add(sink.cleanup);
    return sink;
  }

  async write(data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, this.pos);
      done += bytesWritten;
      this.pos += bytesWritten;
    }
  }

  async reset(): Promise<void> {
    await this.handle.truncate(0);
    this.pos = 0;
  }

  async commit(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
    await rename(this.tmp, this.path);
    cleanups.delete(this.cleanup);
  }

  async discard(): Promise<void> {
    cleanups.delete(this.cleanup);
    await this.handle.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

/** stdout with backpressure. */
export const stdoutSink = {
  write(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
    });
  },
};

/** Registers a temp path to delete on interruption; returns the unregister function. */
export function onInterrupt(f: () => Promise<void>): () => void {
  cleanups.add(f);
  return () => cleanups.delete(f);
}
