/**
 * Raw deflate inflation one call at a time, on node:zlib's own native handle.
 *
 * Indexing a gzip layer needs zlib's Z_BLOCK (stop at each deflate block boundary) and the
 * exact counts of input consumed and output made by each call; node:zlib's streams hide
 * both. The handle under `zlib.InflateRaw` (the one `inflateRawSync` drives) takes a flush
 * mode per call and reports what is left of the input and output, so Z_BLOCK works at
 * native speed without an addon. This is Node's internal API (`_handle`, `_writeState`):
 * the constructor checks it is there and says so plainly if a Node release removes it.
 */
import zlib from "node:zlib";
import { FormatError, SeekableError } from "./errors.js";

interface NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  close(): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

export const Z_NO_FLUSH = zlib.constants.Z_NO_FLUSH;
export const Z_BLOCK = zlib.constants.Z_BLOCK;

export interface Step {
  consumed: number;
  produced: number;
}

/** One raw inflate stream; `dictionary` is the 32 KiB window a resumed stream starts with. */
export class RawInflater {
  private readonly handle: NativeHandle;
  private readonly state: Uint32Array;
  private failure: string | undefined;

  constructor(dictionary?: Uint8Array) {
    const z = zlib.createInflateRaw(
      dictionary && dictionary.length > 0 ? { dictionary: Buffer.from(dictionary) } : {},
    ) as unknown as { _handle?: NativeHandle; _writeState?: Uint32Array };
    if (!z._handle || !z._writeState || typeof z._handle.writeSync !== "function")
      throw new SeekableError(
        "this Node's zlib has no native handle to inflate block by block",
        "unsupported",
      );
    this.handle = z._handle;
    this.state = z._writeState;
    // Errors are kept and thrown by write(), not emitted on the stream (which would close it).
    this.handle.onerror = (message: string) => {
      this.failure = message;
    };
  }

  /** One inflate call; throws FormatError on bad deflate data. */
  write(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): Step {
    if (this.failure !== undefined)
      throw new FormatError(`corrupted deflate data (${this.failure})`);
    this.handle.writeSync(flush, input, inOff, inLen, out, outOff, outLen);
    if (this.failure !== undefined)
      throw new FormatError(`corrupted deflate data (${this.failure})`);
    return { consumed: inLen - this.state[1], produced: outLen - this.state[0] };
  }

  close(): void {
    this.handle.close();
  }
}
