import { open } from "node:fs/promises";
import { SeekableError } from "./errors.js";

/** A byte range [offset, offset + length) of a blob. */
export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * The seam between the format and the world: a blob readable at any offset.
 * Several ranges in one call let a source coalesce them or use multi-range requests.
 */
export interface RangeSource {
  readonly size: number;
  read(ranges: ByteRange[], signal?: AbortSignal): Promise<Uint8Array[]>;
  close?(): Promise<void>;
}

export class BufferRangeSource implements RangeSource {
  readonly size: number;
  constructor(private readonly data: Uint8Array) {
    this.size = data.length;
  }
  async read(ranges: ByteRange[]): Promise<Uint8Array[]> {
    return ranges.map((r) => {
      checkRange(r, this.size);
      return this.data.subarray(r.offset, r.offset + r.length);
    });
  }
}

/** A local file read with positional reads; the handle stays open until close(). */
export class FileRangeSource implements RangeSource {
  private constructor(
    private readonly handle: import("node:fs/promises").FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileRangeSource> {
    const handle = await open(path, "r");
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new SeekableError("not a regular file", "input");
      return new FileRangeSource(handle, st.size);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async read(ranges: ByteRange[]): Promise<Uint8Array[]> {
    return Promise.all(
      ranges.map(async (r) => {
        checkRange(r, this.size);
        const buf = Buffer.allocUnsafe(r.length);
        let done = 0;
        while (done < r.length) {
          const { bytesRead } = await this.handle.read(buf, done, r.length - done, r.offset + done);
          if (bytesRead === 0)
            throw new SeekableError(`file shrank while reading at ${r.offset + done}`, "input");
          done += bytesRead;
        }
        return buf;
      }),
    );
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export function checkRange(r: ByteRange, size: number): void {
  if (
    !Number.isSafeInteger(r.offset) ||
    !Number.isSafeInteger(r.length) ||
    r.offset < 0 ||
    r.length < 0 ||
    r.offset + r.length > size
  ) {
    throw new RangeError(`range ${r.offset}+${r.length} outside blob of ${size} bytes`);
  }
}
