import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { OciLayout } from "./oci-layout.js";

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const MANIFEST_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

/**
 * A small read-only OCI distribution server over an OCI layout: GET/HEAD of manifests (by
 * tag or digest) and blobs, with single, suffix and multi-range requests (multipart/
 * byteranges), as the quickstart and benchmarks need. Every repository name serves the
 * same layout.
 */
export class LayoutServer {
  private server: Server | undefined;
  requests = 0;

  constructor(private readonly layout: OciLayout) {}

  async listen(port = 0, host = "127.0.0.1"): Promise<string> {
    const server = createServer((req, res) => {
      this.requests++;
      this.handle(req, res).catch((e) => {
        if (!res.headersSent) error(res, 500, "UNKNOWN", String((e as Error).message));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    return `${host}:${addr.port}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method !== "GET" && req.method !== "HEAD")
      return error(res, 405, "UNSUPPORTED", "read only");
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      res.writeHead(200, {
        "content-type": "application/json",
        "docker-distribution-api-version": "registry/2.0",
      });
      res.end(req.method === "HEAD" ? undefined : "{}");
      return;
    }
    const m = ROUTE.exec(url.pathname);
    if (!m) return error(res, 404, "NAME_UNKNOWN", "unknown path");
    const [, , kind, ref] = m;
    if (kind === "manifests") return this.manifest(req, res, decodeURIComponent(ref));
    return this.blob(req, res, decodeURIComponent(ref));
  }

  private async manifest(req: IncomingMessage, res: ServerResponse, ref: string): Promise<void> {
    let digest = ref;
    let mediaType: string | undefined;
    if (!DIGEST_RE.test(ref)) {
      try {
        const d = await this.layout.resolveTag(ref);
        digest = d.digest;
        mediaType = d.mediaType;
      } catch {
        return error(res, 404, "MANIFEST_UNKNOWN", `manifest unknown: ${ref}`);
      }
    }
    let body: Buffer;
    try {
      body = await readFile(this.layout.blobPath(digest));
    } catch {
      return error(res, 404, "MANIFEST_UNKNOWN", `manifest unknown: ${ref}`);
    }
    if (!mediaType) {
      try {
        mediaType = JSON.parse(body.toString("utf8")).mediaType;
      } catch {
        mediaType = undefined;
      }
    }
    if (!mediaType || !MANIFEST_TYPES.has(mediaType))
      mediaType = "application/vnd.oci.image.manifest.v1+json";
    res.writeHead(200, {
      "content-type": mediaType,
      "content-length": body.length,
      "docker-content-digest": digest,
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  private async blob(req: IncomingMessage, res: ServerResponse, digest: string): Promise<void> {
    if (!DIGEST_RE.test(digest)) return error(res, 400, "DIGEST_INVALID", `bad digest ${digest}`);
    const size = await this.layout.blobSize(digest);
    if (size === undefined) return error(res, 404, "BLOB_UNKNOWN", `blob unknown: ${digest}`);
    const path = this.layout.blobPath(digest);
    const base = { "accept-ranges": "bytes", "docker-content-digest": digest, etag: `"${digest}"` };
    const rangeHeader = req.headers.range;
    const ranges = rangeHeader ? parseRanges(rangeHeader, size) : undefined;
    if (rangeHeader && ranges === undefined) {
      res.writeHead(416, { ...base, "content-range": `bytes */${size}`, "content-length": 0 });
      res.end();
      return;
    }
    if (!ranges) {
      res.writeHead(200, {
        ...base,
        "content-type": "application/octet-stream",
        "content-length": size,
      });
      if (req.method === "HEAD") return void res.end();
      createReadStream(path).pipe(res);
      return;
    }
    if (ranges.length === 1) {
      const [s, e] = ranges[0];
      res.writeHead(206, {
        ...base,
        "content-type": "application/octet-stream",
        "content-range": `bytes ${s}-${e}/${size}`,
        "content-length": e - s + 1,
      });
      if (req.method === "HEAD") return void res.end();
      createReadStream(path, { start: s, end: e }).pipe(res);
      return;
    }
    const boundary = `seekable-${Math.random().toString(16).slice(2)}`;
    const heads = ranges.map(
      ([s, e]) =>
        `\r\n--${boundary}\r\ncontent-type: application/octet-stream\r\ncontent-range: bytes ${s}-${e}/${size}\r\n\r\n`,
    );
    const tail = `\r\n--${boundary}--\r\n`;
    const length =
      heads.reduce((n, h) => n + Buffer.byteLength(h), 0) +
      ranges.reduce((n, [s, e]) => n + e - s + 1, 0) +
      Buffer.byteLength(tail);
    res.writeHead(206, {
      ...base,
      "content-type": `multipart/byteranges; boundary=${boundary}`,
      "content-length": length,
    });
    if (req.method === "HEAD") return void res.end();
    for (let i = 0; i < ranges.length; i++) {
      res.write(heads[i]);
      const [s, e] = ranges[i];
      for await (const c of createReadStream(path, { start: s, end: e })) {
        if (!res.write(c)) await new Promise<void>((r) => res.once("drain", () => r()));
      }
    }
    res.end(tail);
  }
}

/** RFC 9110 byte ranges, clamped to the blob; undefined when none is satisfiable. */
export function parseRanges(header: string, size: number): [number, number][] | undefined {
  const m = /^bytes=(.+)$/.exec(header.trim());
  if (!m) return undefined;
  const out: [number, number][] = [];
  for (const part of m[1].split(",")) {
    const p = /^\s*(\d*)-(\d*)\s*$/.exec(part);
    if (!p || (p[1] === "" && p[2] === "")) return undefined;
    let s: number;
    let e: number;
    if (p[1] === "") {
      const n = Number(p[2]);
      if (n === 0) continue;
      s = Math.max(0, size - n);
      e = size - 1;
    } else {
      s = Number(p[1]);
      e = p[2] === "" ? size - 1 : Math.min(Number(p[2]), size - 1);
      if (p[2] !== "" && Number(p[2]) < s) return undefined;
    }
    if (s >= size) continue;
    out.push([s, e]);
  }
  return out.length > 0 ? out : undefined;
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}
