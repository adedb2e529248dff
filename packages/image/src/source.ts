import { createHash } from "node:crypto";
import { type Readable, Transform } from "node:stream";
import { FormatError, type RangeSource } from "@seekable/format";
import type { Descriptor, Repository } from "@seekable/registry";

export type { Descriptor };

/** A manifest or index as stored. */
export interface RawManifest {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Uint8Array;
}

/** Where an image is read from: a registry, an OCI layout, a docker-archive tar. */
export interface ImageSource {
  /** What messages name (the reference as typed). */
  readonly name: string;
  /** The repository, when the source is a registry (for cross-repository mounts). */
  readonly repository?: Repository;
  /** The top manifest or index the reference names. */
  root(): Promise<RawManifest>;
  /** A manifest an index points at. */
  manifest(desc: Descriptor): Promise<RawManifest>;
  /** A small blob (a config) in memory, digest-checked. */
  blobBytes(desc: Descriptor): Promise<Uint8Array>;
  /** A blob as a stream, digest-checked (the stream errors on a mismatch). */
  openBlob(desc: Descriptor): Readable;
  /** A blob readable at any offset (an eStargz layer's TOC). */
  rangeSource(desc: Descriptor): Promise<RangeSource>;
  close(): Promise<void>;
}

/** A blob's bytes are not the blob its descriptor names; the message names `digest`. */
export class BlobError extends FormatError {
  override readonly name: string = "BlobError";
  constructor(
    readonly digest: string,
    message: string,
  ) {
    super(message, undefined, "verification");
  }
}

/** Passes bytes through, failing at the end unless they have `digest` and `size`. */
export function verifying(stream: Readable, desc: Descriptor): Readable {
  if (!desc.digest.startsWith("sha256:")) return stream;
  const hash = createHash("sha256");
  let n = 0;
  const t = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      const got = `sha256:${hash.digest("hex")}`;
      if (n !== desc.size)
        cb(new BlobError(desc.digest, `blob ${desc.digest} is ${n} bytes, not ${desc.size}`));
      else if (got !== desc.digest)
        cb(new BlobError(desc.digest, `blob ${desc.digest} has digest ${got} (corrupt)`));
      else cb();
    },
  });
  stream.on("error", (e) => t.destroy(e));
  t.on("close", () => stream.destroy());
  return stream.pipe(t);
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Checks in-memory bytes against a descriptor. */
export function checkBytes(bytes: Uint8Array, desc: Descriptor): Uint8Array {
  if (desc.digest.startsWith("sha256:") && sha256(bytes) !== desc.digest) {
    throw new BlobError(desc.digest, `blob ${desc.digest} does not match its digest (corrupt)`);
  }
  return bytes;
}
