import { repositoryScope } from "./auth.js";
import { blobSubject, headBlob, type Repository } from "./blob.js";
import { header, type RegistryClient, type RegistryResponse, requireHeader } from "./client.js";
import { RegistryError } from "./errors.js";

/** Blob content: bytes in memory, or a stream (a Readable, a generator) read once. */
export type BlobData = Uint8Array | AsyncIterable<Uint8Array>;

export interface PushBlobOptions {
  signal?: AbortSignal;
  /** Upload in PATCH chunks of this many bytes; default one monolithic PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository (same registry) first. */
  mountFrom?: string;
  /** Skip the HEAD that avoids uploading a blob the registry already has. */
  skipExistsCheck?: boolean;
}

export interface PushBlobResult {
  digest: string;
  size: number;
  how: "existed" | "mounted" | "uploaded";
}

/**
 * Pushes a blob: HEAD (already there?), then a cross-repository mount when asked, else
 * POST + PUT (monolithic) or POST + PATCH… + PUT (chunked). The registry checks the digest.
 */
export async function pushBlob(
  client: RegistryClient,
  repo: Repository,
  blob: { digest: string; size: number },
  data: BlobData,
  options: PushBlobOptions = {},
): Promise<PushBlobResult> {
  const { digest, size } = blob;
  const subject = blobSubject(repo, digest);
  const { signal } = options;
  if (!options.skipExistsCheck) {
    const found = await headBlob(client, repo, digest, { signal });
    if (found) return { digest, size: found.size, how: "existed" };
  }
  if (data instanceof Uint8Array && data.length !== size) {
    throw new RegistryError(subject, `data is ${data.length} bytes, descriptor says ${size}`, {
      kind: "usage",
    });
  }
  const start = await startUpload(client, repo, digest, options.mountFrom, signal);
  if (start.mounted) return { digest, size, how: "mounted" };
  try {
    if (options.chunkSize !== undefined && options.chunkSize > 0) {
      await uploadChunked(
        client,
        repo,
        digest,
        size,
        start.location,
        data,
        options.chunkSize,
        signal,
      );
    } else {
      await uploadMonolithic(client, repo, digest, size, start.location, data, signal);
    }
  } catch (e) {
    // A PUT whose response was lost may have succeeded: believe the registry, not the error.
    if (signal?.aborted) throw signal.reason;
    const found = await headBlob(client, repo, digest, { signal }).catch(() => undefined);
    if (found && found.size === size) return { digest, size, how: "uploaded" };
    throw e;
  }
  return { digest, size, how: "uploaded" };
}

/** True when the registry has the blob (HEAD). */
export async function blobExists(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  signal?: AbortSignal,
): Promise<boolean> {
  return (await headBlob(client, repo, digest, { signal })) !== undefined;
}

function uploadRequestBase(repo: Repository, digest: string, mountFrom?: string) {
  const scopes = [repositoryScope(repo.repository, "pull,push")];
  if (mountFrom) scopes.push(repositoryScope(mountFrom, "pull"));
  return { registry: repo.registry, scopes, subject: blobSubject(repo, digest) };
}

async function startUpload(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  mountFrom: string | undefined,
  signal: AbortSignal | undefined,
): Promise<{ mounted: true } | { mounted: false; location: string }> {
  const base = uploadRequestBase(repo, digest, mountFrom);
  const query = mountFrom
    ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}`
    : "";
  return client.call(
    {
      ...base,
      method: "POST",
      path: `/v2/${repo.repository}/blobs/uploads/${query}`,
      headers: { "content-length": "0" },
      signal,
      expect: [201, 202],
    },
    async (res) => {
      res.body.resume();
      if (res.status === 201) return { mounted: true as const };
      return { mounted: false as const, location: location(res, base.subject) };
    },
  );
}

/** Location resolved against the request (registries may send it relative). */
function location(res: RegistryResponse, subject: string): string {
  return new URL(requireHeader(res, "location", subject), res.url).toString();
}

function withDigest(loc: string, digest: string): string {
  const u = new URL(loc);
  u.searchParams.set("digest", digest);
  return u.toString();
}

async function finishUpload(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  loc: string,
  body: BlobData | null,
  size: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const base = uploadRequestBase(repo, digest);
  await client.call(
    {
      ...base,
      method: "PUT",
      path: withDigest(loc, digest),
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body,
      signal,
      expect: [201, 204],
      // A stream cannot be sent twice.
      retry: body === null || body instanceof Uint8Array,
    },
    async (res) => {
      res.body.resume();
      const reported = header(res, "docker-content-digest");
      if (reported !== undefined && reported !== digest) {
        throw new RegistryError(base.subject, `registry stored digest ${reported}`, {
          kind: "verification",
        });
      }
    },
  );
}

async function uploadMonolithic(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  size: number,
  loc: string,
  data: BlobData,
  signal: AbortSignal | undefined,
): Promise<void> {
  await finishUpload(client, repo, digest, loc, data, size, signal);
}

async function uploadChunked(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  size: number,
  firstLocation: string,
  data: BlobData,
  chunkSize: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const base = uploadRequestBase(repo, digest);
  let loc = firstLocation;
  let offset = 0;
  for await (const chunk of rechunk(data, chunkSize)) {
    if (offset + chunk.length > size) {
      throw new RegistryError(base.subject, `data is longer than the descriptor's ${size} bytes`, {
        kind: "usage",
      });
    }
    loc = await client.call(
      {
        ...base,
        method: "PATCH",
        path: loc,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + chunk.length - 1}`,
          "content-length": String(chunk.length),
        },
        body: chunk,
        signal,
        expect: [202],
        // Not blindly repeatable: a lost response leaves the session's offset unknown.
        retry: false,
      },
      async (res) => {
        res.body.resume();
        const got = /^(?:bytes=)?0-(\d+)$/.exec(header(res, "range") ?? "");
        if (got && Number(got[1]) !== offset + chunk.length - 1) {
          throw new RegistryError(
            base.subject,
            `registry holds bytes 0-${got[1]} after a chunk ending at ${offset + chunk.length - 1}`,
            {
              kind: "protocol",
            },
          );
        }
        return location(res, base.subject);
      },
    );
    offset += chunk.length;
  }
  if (offset !== size) {
    throw new RegistryError(base.subject, `data is ${offset} bytes, descriptor says ${size}`, {
      kind: "usage",
    });
  }
  await finishUpload(client, repo, digest, loc, null, 0, signal);
}

/** Re-cuts a byte stream into pieces of exactly `size` bytes (the last may be shorter). */
async function* rechunk(data: BlobData, size: number): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
    return;
  }
  let pending: Buffer[] = [];
  let n = 0;
  for await (const piece of data) {
    let buf = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (n + buf.length >= size) {
      const take = size - n;
      pending.push(buf.subarray(0, take));
      yield Buffer.concat(pending, size);
      buf = buf.subarray(take);
      pending = [];
      n = 0;
    }
    if (buf.length > 0) {
      pending.push(Buffer.from(buf)); // copy: the producer may reuse its buffer
      n += buf.length;
    }
  }
  if (n > 0) yield Buffer.concat(pending, n);
}

export interface StreamingUploadOptions {
  signal?: AbortSignal;
  /** Bytes sent per PATCH (default 8 MiB; registries on object storage want >= 5 MiB). */
  chunkSize?: number;
}

/**
 * An upload whose digest is known only at the end (a blob being produced): POST, PATCH
 * chunks as they fill (one in flight while the next fills), PUT ?digest= to finish. The
 * registry checks the digest. `reset` abandons the session and starts a new one.
 */
export class StreamingUpload {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private inFlight: Promise<void> | undefined;
  private done = false;

  private constructor(
    private readonly client: RegistryClient,
    private readonly repo: Repository,
    private location: string,
    private readonly chunkSize: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  static async start(
    client: RegistryClient,
    repo: Repository,
    options: StreamingUploadOptions = {},
  ): Promise<StreamingUpload> {
    const loc = await StreamingUpload.open(client, repo, options.signal);
    return new StreamingUpload(client, repo, loc, options.chunkSize ?? 8 << 20, options.signal);
  }

  private static async open(
    client: RegistryClient,
    repo: Repository,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const start = await startUpload(client, repo, "upload", undefined, signal);
    if (start.mounted)
      throw new RegistryError(blobSubject(repo, "upload"), "unexpected 201 to POST", {
        kind: "protocol",
      });
    return start.location;
  }

  /** Bytes accepted so far (sent or buffered). */
  get size(): number {
    return this.offset + this.pendingBytes;
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.done)
      throw new RegistryError(blobSubject(this.repo, "upload"), "upload finished", {
        kind: "usage",
      });
    if (data.length === 0) return;
    this.pending.push(Buffer.from(data)); // copy: the producer may reuse its buffer
    this.pendingBytes += data.length;
    if (this.pendingBytes >= this.chunkSize) await this.flush();
  }

  /** Sends what is buffered; waits for the previous PATCH first (at most one in flight). */
  private async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    if (this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const start = this.offset;
    this.offset += chunk.length;
    const p = this.patch(chunk, start);
    this.inFlight = p;
    p.catch(() => {}); // observed by the next flush or finish
  }

  private async patch(chunk: Uint8Array, start: number): Promise<void> {
    const subject = blobSubject(this.repo, "upload");
    const base = { registry: this.repo.registry, subject };
    this.location = await this.client.call(
      {
        ...base,
        scopes: [repositoryScope(this.repo.repository, "pull,push")],
        method: "PATCH",
        path: this.location,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${start}-${start + chunk.length - 1}`,
          "content-length": String(chunk.length),
        },
        body: chunk,
        signal: this.signal,
        expect: [202],
        retry: false,
      },
      async (res) => {
        res.body.resume();
        const got = /^(?:bytes=)?0-(\d+)$/.exec(header(res, "range") ?? "");
        if (got && Number(got[1]) !== start + chunk.length - 1) {
          throw new RegistryError(
            subject,
            `registry holds bytes 0-${got[1]} after a chunk ending at ${start + chunk.length - 1}`,
            { kind: "protocol" },
          );
        }
        return location(res, subject);
      },
    );
  }

  /** Drops everything sent and starts a fresh session. */
  async reset(): Promise<void> {
    await this.inFlight?.catch(() => {});
    this.inFlight = undefined;
    await this.cancel();
    this.pending = [];
    this.pendingBytes = 0;
    this.offset = 0;
    this.location = await StreamingUpload.open(this.client, this.repo, this.signal);
  }

  /** Sends the rest and commits the blob under `digest` (checked by the registry). */
  async finish(blob: { digest: string; size: number }): Promise<PushBlobResult> {
    await this.flush();
    await this.inFlight;
    this.inFlight = undefined;
    if (this.offset !== blob.size) {
      throw new RegistryError(
        blobSubject(this.repo, blob.digest),
        `uploaded ${this.offset} bytes, descriptor says ${blob.size}`,
        { kind: "usage" },
      );
    }
    this.done = true;
    await finishUpload(this.client, this.repo, blob.digest, this.location, null, 0, this.signal);
    return { digest: blob.digest, size: blob.size, how: "uploaded" };
  }

  /** Abandons the session (best effort: registries also purge stale uploads). */
  async abort(): Promise<void> {
    this.done = true;
    await this.inFlight?.catch(() => {});
    this.pending = [];
    this.pendingBytes = 0;
    await this.cancel();
  }

  private async cancel(): Promise<void> {
    await this.client
      .call(
        {
          registry: this.repo.registry,
          subject: blobSubject(this.repo, "upload"),
          scopes: [repositoryScope(this.repo.repository, "pull,push")],
          method: "DELETE",
          path: this.location,
          expect: [204, 200, 202, 404],
          retry: false,
        },
        async (res) => {
          res.body.resume();
        },
      )
      .catch(() => {});
  }
}
