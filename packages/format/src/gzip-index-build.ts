/**
 * Builds a gzip layer's index in one streaming pass: the compressed bytes are hashed (the
 * layer digest is checked at the end), inflated with checkpoints (gzip-checkpoints.ts) and
 * parsed as tar; each entry's metadata goes into a TOC, each regular file's content into
 * sha256 digests per `chunkSize` bytes at their offsets in the uncompressed tar.
 */
import { createHash } from "node:crypto";
import { VerificationError } from "./errors.js";
import { GzipCheckpointer } from "./gzip-checkpoints.js";
import { type GzipIndex, indexToc } from "./gzip-index.js";
import { toHeader } from "./tar-input.js";
import { readRawTar } from "./tar-reader.js";
import { sha256Digest, type TocEntry } from "./toc.js";
import { tocEntryOf } from "./writer.js";

export const DEFAULT_SPAN_SIZE = 4 << 20;
export const DEFAULT_INDEX_CHUNK_SIZE = 4 << 20;

export interface IndexBuildOptions {
  spanSize?: number;
  chunkSize?: number;
  /** The layer's digest: the compressed bytes must hash to it. */
  digest?: string;
  /** The layer's size: the compressed bytes must be exactly this many. */
  size?: number;
}

const EMPTY_DIGEST = sha256Digest(new Uint8Array(0));

export async function buildGzipIndex(
  input: AsyncIterable<Uint8Array>,
  opts: IndexBuildOptions = {},
): Promise<GzipIndex> {
  const spanSize = opts.spanSize ?? DEFAULT_SPAN_SIZE;
  const chunkSize = opts.chunkSize ?? DEFAULT_INDEX_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1)
    throw new RangeError("chunk size must be a positive integer");
  const blobHash = createHash("sha256");
  const hashed = (async function* () {
    for await (const c of input) {
      blobHash.update(c);
      yield c;
    }
  })();
  const cps = new GzipCheckpointer({ spanSize });
  const entries: TocEntry[] = [];
  const unames = new Map<number, string>();
  const gnames = new Map<number, string>();
  for await (const raw of readRawTar(cps.inflate(hashed))) {
    const header = toHeader(raw.header);
    const ent = tocEntryOf(header, unames, gnames);
    entries.push(ent);
    if (ent.type !== "reg") continue;
    ent.size = header.size;
    if (header.size === 0) {
      ent.digest = EMPTY_DIGEST;
      continue;
    }
    const fileHash = createHash("sha256");
    let chunk = ent;
    let chunkHash = createHash("sha256");
    let inChunk = 0;
    let done = 0;
    const close = (): void => {
      chunk.offset = raw.offset + done - inChunk;
      chunk.chunkOffset = done - inChunk;
      chunk.chunkSize = inChunk;
      chunk.chunkDigest = `sha256:${chunkHash.digest("hex")}`;
    };
    for await (const piece of raw.body) {
      fileHash.update(piece);
      let p = 0;
      while (p < piece.length) {
        if (inChunk === chunkSize) {
          close();
          chunk = { name: ent.name, type: "chunk" };
          entries.push(chunk);
          chunkHash = createHash("sha256");
          inChunk = 0;
        }
        const k = Math.min(piece.length - p, chunkSize - inChunk);
        chunkHash.update(piece.subarray(p, p + k));
        inChunk += k;
        done += k;
        p += k;
      }
    }
    close();
    ent.digest = `sha256:${fileHash.digest("hex")}`;
  }
  // The tar reader reads past the end marker to the end of its input, so the gzip trailer
  // (CRC, length) has been checked and every compressed byte hashed by now.
  const digest = `sha256:${blobHash.digest("hex")}`;
  if (opts.digest && opts.digest !== digest)
    throw new VerificationError(`layer digest ${digest} does not match ${opts.digest}`);
  if (opts.size !== undefined && opts.size !== cps.compressedSize)
    throw new VerificationError(`layer is ${cps.compressedSize} bytes, not ${opts.size}`);
  return {
    version: 1,
    layer: { digest, size: cps.compressedSize },
    uncompressedSize: cps.uncompressedSize,
    spanSize,
    chunkSize,
    checkpoints: cps.checkpoints,
    marks: cps.marks,
    toc: indexToc(entries),
  };
}
