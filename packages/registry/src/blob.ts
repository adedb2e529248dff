import { Readable } from "node:stream";
import { repositoryScope } from "./auth.js";
import { discardBody, readBody } from "./body.js";
import {
  header,
  type RegistryClient,
  type RegistryRequest,
  type RegistryResponse,
} from "./client.js";
import { type HttpRange, parseContentRange, rangeHeader } from "./content-range.js";
import { Digester } from "./digest.js";
import { RegistryError } from "./errors.js";
import { byterangesBoundary, MultipartError, parseByteranges } from "./multipart.js";
import { formatRepository, type Reference } from "./reference.js";
import { classifyNetworkError, Retrier } from "./retry.js";
import { countBytes, type RegistryStats } from "./stats.js";

/** The repository a blob lives in (tag and digest of the reference are ignored). */
export type Repository = Pick<Reference, "registry" | "repository">;

export interface BlobInfo {
  digest: string;
  size: number;
}

export function blobSubject(repo: Repository, digest: string): string {
  return `${formatRepository(repo)}@${digest}`;
}

function blobRequest(
  repo: Repository,
  digest: string,
  extra: Partial<RegistryRequest>,
): RegistryRequest {
  return {
    method: "GET",
    registry: repo.registry,
    path: `/v2/${repo.repository}/blobs/${digest}`,
    scopes: [repositoryScope(repo.repository, "pull")],
    subject: blobSubject(repo, digest),
    ...extra,
  };
}

/** HEAD a blob: its size, or undefined when the registry does not have it. */
export async function headBlob(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: { signal?: AbortSignal; stats?: RegistryStats } = {},
): Promise<BlobInfo | undefined> {
  const req = blobRequest(repo, digest, { method: "HEAD", expect: [200, 404], ...options });
  return client.call(req, async (res) => {
    res.body.resume();
    if (res.status === 404) return undefined;
    const size = Number(header(res, "content-length"));
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RegistryError(req.subject, "HEAD gave no usable Content-Length", {
        kind: "protocol",
      });
    }
    return { digest: header(res, "docker-content-digest") ?? digest, size };
  });
}

export interface GetBlobOptions {
  signal?: AbortSignal;
  stats?: RegistryStats;
  /** Expected size (from the descriptor): a different length is an error. */
  size?: number;
}

/**
 * Streams a blob, verifying its digest: the stream errors instead of ending if the bytes do
 * not match, so consumers must treat an errored stream as "no output". A connection that
 * breaks mid-body is resumed with `Range: bytes=N-`, so no byte is downloaded twice.
 */
export function getBlob(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: GetBlobOptions = {},
): Readable {
  return Readable.from(streamBlob(client, repo, digest, options), { objectMode: false });
}

/** A whole blob in memory (configs, small layers), digest verified. */
export async function fetchBlob(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: GetBlobOptions & { maxBytes?: number } = {},
): Promise<Uint8Array> {
  const limit = options.maxBytes ?? 64 << 20;
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of streamBlob(client, repo, digest, options)) {
    n += chunk.length;
    if (n > limit) {
      throw new RegistryError(blobSubject(repo, digest), `blob larger than ${limit} bytes`, {
        kind: "protocol",
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, n);
}

async function* streamBlob(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: GetBlobOptions,
): AsyncGenerator<Uint8Array> {
  const subject = blobSubject(repo, digest);
  let digester: Digester;
  try {
    digester = new Digester(digest);
  } catch (e) {
    throw new RegistryError(subject, (e as Error).message, { kind: "usage" });
  }
  const sinks = [client.stats, options.stats];
  let offset = 0;
  let size = options.size;
  // One attempt budget for the whole download, whether a request fails to start or its
  // body breaks off: each attempt resumes where the last one stopped.
  const retrier = new Retrier(client.retryPolicy, options.signal);
  for (;;) {
    if (size !== undefined && offset === size && offset > 0) break; // broke off after the last byte
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let res: RegistryResponse;
    try {
      res = await client.call(
        blobRequest(repo, digest, {
          headers,
          signal: options.signal,
          stats: options.stats,
          expect: [200, 206],
          retry: false,
        }),
        async (r) => r,
      );
    } catch (e) {
      await retrier.failed(e);
      continue;
    }
    try {
      const length = checkStart(res, offset, subject);
      if (length !== undefined) {
        if (size !== undefined && length !== size) {
          throw new RegistryError(subject, `blob is ${length} bytes, expected ${size}`, {
            kind: "verification",
          });
        }
        size = length;
      }
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        countBytes(sinks, chunk.length);
        if (size !== undefined && offset + chunk.length > size) {
          throw new RegistryError(subject, `body longer than the blob's ${size} bytes`, {
            kind: "verification",
          });
        }
        digester.update(chunk);
        offset += chunk.length;
        yield chunk;
      }
    } catch (e) {
      discardBody(res.body);
      if (options.signal?.aborted) throw options.signal.reason;
      let err = classifyNetworkError(subject, e);
      if (err.retryable && size !== undefined && offset < size && err.kind === "network") {
        err = err.withReason(
          `body shorter than promised (connection closed at byte ${offset} of ${size})`,
        );
      }
      await retrier.failed(err);
      continue;
    }
    if (size !== undefined && offset < size) {
      // Ended cleanly but short (no Content-Length to catch it): resume like a reset.
      await retrier.failed(
        new RegistryError(subject, `body shorter than promised (${offset} of ${size} bytes)`, {
          kind: "network",
          retryable: true,
        }),
      );
      continue;
    }
    break;
  }
  const actual = digester.digest();
  if (actual !== digest) {
    throw new RegistryError(subject, `digest mismatch: got ${actual}`, { kind: "verification" });
  }
}

/** Checks a (resumed) response starts at `offset`; returns the blob's total size when known. */
function checkStart(res: RegistryResponse, offset: number, subject: string): number | undefined {
  if (res.status === 206) {
    const cr = parseContentRange(header(res, "content-range"));
    if (!cr || cr.start !== offset) {
      throw new RegistryError(
        subject,
        `unexpected Content-Range ${JSON.stringify(header(res, "content-range"))} for bytes=${offset}-`,
        {
          kind: "protocol",
        },
      );
    }
    return cr.total;
  }
  if (offset > 0) {
    // Resuming got the whole blob again: refuse rather than download it twice.
    throw new RegistryError(
      subject,
      "server ignored Range when resuming; not downloading the blob again",
      {
        kind: "unsupported",
        code: "RANGE_IGNORED",
      },
    );
  }
  const length = header(res, "content-length");
  return length === undefined ? undefined : Number(length);
}

export interface RangeReadOptions {
  signal?: AbortSignal;
  stats?: RegistryStats;
  /** The blob's size when known: a response naming another total is an error. */
  size?: number;
}

export interface RangeReadResult {
  /** One buffer per requested range, in request order. */
  data: Uint8Array[];
  /** The blob's size, when the response said. */
  size: number | undefined;
}

/**
 * One GET with one or several ranges (`Range: bytes=a-b,c-d`), parsing a single 206, a
 * `multipart/byteranges` 206, or a 200 that is exactly what was asked. Refusals are
 * RegistryErrors of kind "unsupported": code MULTI_RANGE_UNSUPPORTED (400/501 to several
 * ranges) or RANGE_IGNORED (a 200 with more than asked; its body is dropped unread).
 */
export async function readBlobRanges(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  ranges: readonly HttpRange[],
  options: RangeReadOptions = {},
): Promise<RangeReadResult> {
  const subject = blobSubject(repo, digest);
  if (ranges.length === 0) return { data: [], size: options.size };
  for (const r of ranges) {
    const bad =
      "suffix" in r
        ? !(Number.isSafeInteger(r.suffix) && r.suffix > 0)
        : !(Number.isSafeInteger(r.start) && r.start >= 0 && r.end > r.start);
    if (bad)
      throw new RegistryError(subject, `invalid range ${JSON.stringify(r)}`, { kind: "usage" });
  }
  const multi = ranges.length > 1;
  const wanted = ranges.reduce((n, r) => n + ("suffix" in r ? r.suffix : r.end - r.start), 0);
  const sinks = [client.stats, options.stats];
  const req = blobRequest(repo, digest, {
    headers: { range: rangeHeader(ranges), "accept-encoding": "identity" },
    signal: options.signal,
    stats: options.stats,
    expect: multi ? [200, 206, 400, 501] : [200, 206],
  });
  return client.call(req, async (res) => {
    if (res.status === 400 || res.status === 501) {
      discardBody(res.body);
      throw new RegistryError(subject, `server refuses multi-range requests (${res.status})`, {
        kind: "unsupported",
        status: res.status,
        code: "MULTI_RANGE_UNSUPPORTED",
      });
    }
    if (res.status === 200) {
      const length = Number(header(res, "content-length") ?? Number.NaN);
      // A 200 is acceptable only when the whole blob is no more than what was asked.
      if (!(length <= wanted) || (options.size !== undefined && length !== options.size)) {
        discardBody(res.body);
        throw new RegistryError(
          subject,
          `server ignored ${multi ? "the multi-range" : "the Range"} request (200 with the whole blob)`,
          {
            kind: "unsupported",
            status: 200,
            code: "RANGE_IGNORED",
          },
        );
      }
      const body = await readBody(res.body, length, sinks, subject, length);
      if (body.length < length) throw shortBody(subject, body.length, length);
      return slice(subject, ranges, [{ start: 0, end: length - 1, data: body }], length);
    }
    const contentType = header(res, "content-type");
    const boundary = byterangesBoundary(contentType);
    if (boundary === undefined) {
      const cr = parseContentRange(header(res, "content-range"));
      if (!cr)
        throw new RegistryError(subject, `206 without a valid Content-Range`, { kind: "protocol" });
      checkTotal(subject, cr.total, options.size);
      const expected = cr.end - cr.start + 1;
      const body = await readBody(res.body, expected, sinks, subject, expected);
      if (body.length < expected) throw shortBody(subject, body.length, expected);
      return slice(subject, ranges, [{ ...cr, data: body }], cr.total ?? options.size);
    }
    // Part headers cost ~100 bytes each; allow generous slack, never a whole blob.
    const limit = wanted + 1024 * ranges.length + 8192;
    const promised = Number(header(res, "content-length") ?? Number.NaN);
    const body = await readBody(
      res.body,
      limit,
      sinks,
      subject,
      Number.isNaN(promised) ? undefined : promised,
    );
    let parts: ReturnType<typeof parseByteranges>;
    try {
      parts = parseByteranges(body, boundary);
    } catch (e) {
      if (!(e instanceof MultipartError)) throw e;
      throw new RegistryError(subject, `bad multipart/byteranges response: ${e.message}`, {
        kind: e.truncated ? "network" : "protocol",
        retryable: e.truncated,
      });
    }
    const total = parts.find((p) => p.total !== undefined)?.total;
    checkTotal(subject, total, options.size);
    return slice(subject, ranges, parts, total ?? options.size);
  });
}

function shortBody(subject: string, got: number, want: number): RegistryError {
  return new RegistryError(subject, `body shorter than promised (${got} of ${want} bytes)`, {
    kind: "network",
    retryable: true,
  });
}

function checkTotal(subject: string, total: number | undefined, size: number | undefined): void {
  if (total !== undefined && size !== undefined && total !== size) {
    throw new RegistryError(subject, `blob is ${total} bytes, expected ${size}`, {
      kind: "verification",
    });
  }
}

/** Cuts each requested range out of whichever returned part covers it (servers may merge or reorder). */
function slice(
  subject: string,
  ranges: readonly HttpRange[],
  parts: { start: number; end: number; data: Uint8Array }[],
  total: number | undefined,
): RangeReadResult {
  const data = ranges.map((r) => {
    let start: number;
    let end: number;
    if ("suffix" in r) {
      if (total === undefined)
        throw new RegistryError(subject, "suffix range answered without the blob size", {
          kind: "protocol",
        });
      start = Math.max(0, total - r.suffix);
      end = total;
    } else {
      start = r.start;
      end = total === undefined ? r.end : Math.min(r.end, total); // servers clamp past-the-end ranges
    }
    const part = parts.find((p) => p.start <= start && end - 1 <= p.end);
    if (!part) {
      throw new RegistryError(subject, `response lacks bytes ${start}-${end - 1}`, {
        kind: "protocol",
      });
    }
    return part.data.subarray(start - part.start, end - part.start);
  });
  return { data, size: total };
}
