import { createHash } from "node:crypto";
import { createInflateRaw, inflateRawSync } from "node:zlib";
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

/** The member's data ended before its deflate stream did: its range was cut short. */
export class TruncatedMemberError extends FormatError {}

/**
 * Chunks up to this size are inflated in place: less CPU than a threadpool round trip
 * (bench/chunk-read.mjs), and the loop is held for a millisecond at most.
 */
const SYNC_MAX_CHUNK = 256 * 1024;
/** Output an in-place inflate may make (the chunk plus tar padding and headers after it). */
const SYNC_MAX_OUTPUT = 512 * 1024;

/**
 * Decompresses the start of the gzip member in `compressed` and returns the chunk's bytes.
 * Never inflates much past innerOffset + chunkSize, whatever the member holds (a member of
 * a few MB can inflate to GBs): what follows the chunk in the member (tar padding, the next
 * headers) is not needed, and the chunk is checked against its sha256 digest, not the gzip
 * CRC. Small chunks are inflated in place with a bounded output; larger ones, or members that
 * hold more, on the libuv threadpool, so the event loop keeps serving other reads meanwhile.
 * `name` says whose chunk it is in errors.
 */
export async function inflateChunkAsync(
  compressed: Uint8Array,
  ref: ChunkRef,
  name?: string,
): Promise<Uint8Array> {
  const want = ref.innerOffset + ref.chunkSize;
  let out: Buffer;
  try {
    const body = compressed.subarray(memberPayloadStart(compressed));
    out = (want <= SYNC_MAX_CHUNK && inflateSmall(body, want)) || (await inflatePrefix(body, want));
  } catch (e) {
    throw inflateError(e, ref, name);
  }
  return chunkOf(out, ref, name);
}

function describe(ref: ChunkRef, name?: string): string {
  return `${name ? `${name}: ` : ""}chunk at offset ${ref.offset}`;
}

function inflateError(e: unknown, ref: ChunkRef, name?: string): Error {
  const err = e as NodeJS.ErrnoException;
  const what = describe(ref, name);
  if (err.code === "Z_BUF_ERROR")
    return new TruncatedMemberError(`${what}: gzip member ends early (${err.message})`);
  if (e instanceof NoMemberError) return new FormatError(`${what}: ${err.message}`);
  if (err.code === "ERR_BUFFER_TOO_LARGE")
    return new FormatError(
      `${what}: gzip member inflates to more than the ${ref.innerOffset + ref.chunkSize} bytes the TOC says`,
    );
  return new FormatError(`${what}: corrupted gzip data (${err.message})`);
}

function chunkOf(out: Buffer, ref: ChunkRef, name?: string): Uint8Array {
  const want = ref.innerOffset + ref.chunkSize;
  if (out.length < want) {
    throw new FormatError(
      `${describe(ref, name)}: member holds ${out.length} bytes, TOC says ${want}`,
    );
  }
  return out.subarray(ref.innerOffset, want);
}

/** The whole member if it inflates to at most SYNC_MAX_OUTPUT bytes, else undefined. */
function inflateSmall(body: Uint8Array, want: number): Buffer | undefined {
  try {
    // node:zlib stops and throws as soon as the output passes maxOutputLength.
    return inflateRawSync(body, { chunkSize: want + 16 * 1024, maxOutputLength: SYNC_MAX_OUTPUT });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return undefined;
    throw e;
  }
}

/**
 * The first `want` (or more, by less than one output buffer) inflated bytes of a raw deflate
 * stream, or all of it if shorter. The stream is destroyed once enough has come out.
 */
function inflatePrefix(body: Uint8Array, want: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // One output buffer holds a whole default-size chunk: one threadpool job per chunk.
    const z = createInflateRaw({
      chunkSize: Math.min(Math.max(want + 16 * 1024, 64 * 1024), 8 << 20),
    });
    const parts: Buffer[] = [];
    let got = 0;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      z.destroy();
      if (err) reject(err);
      else resolve(parts.length === 1 ? parts[0] : Buffer.concat(parts, got));
    };
    z.on("data", (b: Buffer) => {
      parts.push(b);
      got += b.length;
      if (got >= want) finish();
    });
    z.on("error", finish);
    z.on("end", () => finish());
    z.end(body);
  });
}

class NoMemberError extends Error {}

/** Offset of the deflate data after a gzip member header (RFC 1952, optional fields). */
function memberPayloadStart(b: Uint8Array): number {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8) {
    throw new NoMemberError("no gzip member starts at this offset");
  }
  const flg = b[3];
  let p = 10;
  if (flg & 4) p += 2 + (b[p] | (b[p + 1] << 8));
  const skipString = () => {
    while (p < b.length && b[p] !== 0) p++;
    p++;
  };
  if (flg & 8) skipString();
  if (flg & 16) skipString();
  if (flg & 2) p += 2;
  if (p >= b.length) throw new FormatError("truncated gzip header");
  return p;
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
