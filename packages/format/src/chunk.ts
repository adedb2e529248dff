import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import { FormatError, VerificationError } from "./errors.js";

/** Where one chunk of a file lives in the blob. */
export interface ChunkRef {
  /** Compressed offset of the gzip member holding the chunk. */
  offset: number;
  /** End of that member's range (the next member, or the TOC). */
  nextOffset: number;
  /** Uncompressed offset of the chunk inside the member (MinChunkSize blobs). */
  innerOffset: number;
  /** Offset of the chunk in the file. */
  chunkOffset: number;
  chunkSize: number;
  /** sha256 of the chunk bytes; absent in legacy stargz. */
  chunkDigest?: string;
}

const require = createRequire(import.meta.url);
type ZlibSync = typeof import("zlib-sync");
let zlibSync: ZlibSync | undefined;
try {
  zlibSync = require("zlib-sync") as ZlibSync;
} catch {
  zlibSync = undefined; // the native addon did not build: node:zlib does the job
}

/**
 * Decompresses the gzip member(s) in `compressed` and returns the chunk's bytes.
 * zlib-sync inflates one member and stops at its end (bench/inflate measured it against
 * node:zlib); node:zlib is the fallback and handles members that continue into the next.
 */
export function inflateChunk(compressed: Uint8Array, ref: ChunkRef): Uint8Array {
  const want = ref.innerOffset + ref.chunkSize;
  let out: Uint8Array | undefined;
  if (zlibSync) {
    const inf = new zlibSync.Inflate({
      chunkSize: Math.min(Math.max(want + 1024, 64 * 1024), 64 << 20),
      windowBits: 31,
    });
    inf.push(
      Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength),
      zlibSync.Z_SYNC_FLUSH,
    );
    if (inf.err === zlibSync.Z_OK || inf.err === zlibSync.Z_STREAM_END) out = inf.result as Buffer;
  }
  if (!out || out.length < want) {
    try {
      out = gunzipSync(compressed, { maxOutputLength: Math.max(want + (1 << 20), 1 << 26) });
    } catch (e) {
      throw new FormatError(
        `chunk at offset ${ref.offset}: corrupted gzip data (${(e as Error).message})`,
      );
    }
  }
  if (out.length < want) {
    throw new FormatError(
      `chunk at offset ${ref.offset}: member holds ${out.length} bytes, TOC says ${want}`,
    );
  }
  return out.subarray(ref.innerOffset, want);
}

export function verifyChunk(data: Uint8Array, ref: ChunkRef, name: string): void {
  if (!ref.chunkDigest) return;
  const got = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  if (got !== ref.chunkDigest) {
    throw new VerificationError(
      `${name}: chunk at file offset ${ref.chunkOffset} does not match its digest (got ${got}, TOC says ${ref.chunkDigest})`,
    );
  }
}
