// A link shaper of seekable's own: an HTTP proxy on loopback in front of a registry that
// adds a deterministic round-trip delay per request and per new connection, and limits the
// bandwidth of response bodies with one token bucket shared by every connection.
//
// Model (what one request costs through the proxy):
//   - a new TCP connection: + 1 RTT before its first request is forwarded (the handshake);
//   - every request: + RTT/2 before it is forwarded upstream (the request's trip) and
//     + RTT/2 before the response headers are sent back (the response's trip);
//   - response bodies: sent in slices of at most 16 KiB, each slice waits until the shared
//     link has transmitted everything reserved before it (FIFO serialization at
//     `mbit` Mbit/s, no burst), so N parallel downloads share the bandwidth.
// Request bodies and headers are not rate-limited (reads are what a cold start waits for).
// The upstream side (proxy -> registry, on loopback) is not shaped.
import {
  type Agent,
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";

export interface LinkSetting {
  /** Round-trip time added, in milliseconds. */
  rttMs: number;
  /** Bandwidth of response bodies in Mbit/s (10^6 bit/s); 0 = unlimited. */
  mbit: number;
}

export function formatLink(l: LinkSetting): string {
  return `${l.rttMs} ms / ${l.mbit > 0 ? `${l.mbit} Mbit/s` : "unlimited"}`;
}

/** Counters of what crossed the proxy towards the client. */
export interface ProxyCounters {
  requests: number;
  connections: number;
  /** Response body bytes sent to clients. */
  bytes: number;
}

export interface ShapingProxy {
  readonly url: string;
  /** "127.0.0.1:PORT" */
  readonly host: string;
  /** The link applied to requests from now on. */
  link: LinkSetting;
  readonly counters: ProxyCounters;
  /** Zeroes the counters (between runs). */
  reset(): void;
  /** Closes every client connection (the next run starts cold: new handshakes). */
  dropConnections(): void;
  close(): Promise<void>;
}

export interface ShapingProxyOptions {
  /** Upstream origin (http(s)://HOST:PORT), or one chosen per request path. */
  upstream: string | ((path: string) => string);
  link?: LinkSetting;
}

const SLICE = 16 << 10;

const sleep = (ms: number) =>
  ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve();

/** A link that transmits reserved bytes in order at a fixed rate (shared by all users). */
export class TokenBucket {
  /** When (performance.now() ms) the link has sent everything reserved so far. */
  private free = 0;
  constructor(public bytesPerSecond: number) {}

  /** Resolves when `n` more bytes have "crossed" the link. */
  take(n: number): Promise<void> {
    if (!(this.bytesPerSecond > 0)) return Promise.resolve();
    const now = performance.now();
    this.free = Math.max(now, this.free) + (n * 1000) / this.bytesPerSecond;
    return sleep(this.free - now);
  }
}

export async function startShapingProxy(options: ShapingProxyOptions): Promise<ShapingProxy> {
  const pick =
    typeof options.upstream === "string"
      ? (() => {
          const u = options.upstream as string;
          return () => u;
        })()
      : options.upstream;
  let link: LinkSetting = options.link ?? { rttMs: 0, mbit: 0 };
  const bucket = new TokenBucket(linkRate(link));
  const counters: ProxyCounters = { requests: 0, connections: 0, bytes: 0 };
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<Socket>();
  /** Sockets whose handshake delay is still owed (their first request pays it). */
  const fresh = new WeakSet<Socket>();

  const server: Server = createServer((req, res) => {
    counters.requests++;
    handle(req, res).catch((e) => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`shaping proxy: ${(e as Error).message}`);
      } else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on("connection", (s: Socket) => {
    counters.connections++;
    sockets.add(s);
    fresh.add(s);
    s.setNoDelay(true);
    s.on("close", () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const l = link; // the setting when the request arrived
    let delay = l.rttMs / 2;
    if (fresh.has(req.socket)) {
      fresh.delete(req.socket);
      delay += l.rttMs;
    }
    await sleep(delay);
    const target = new URL(pick(req.url ?? "/"));
    const https = target.protocol === "https:";
    const headers: OutgoingHttpHeaders = { ...req.headers, host: target.host };
    delete headers.connection;
    const up = (https ? httpsRequest : httpRequest)({
      protocol: target.protocol,
      host: target.hostname,
      port: target.port || (https ? 443 : 80),
      method: req.method,
      path: req.url,
      headers,
      agent: (https ? httpsAgent : httpAgent) as Agent,
    });
    const upRes = await new Promise<IncomingMessage>((resolve, reject) => {
      up.on("response", resolve);
      up.on("error", reject);
      req.pipe(up);
    });
    res.on("close", () => {
      if (!upRes.complete) upRes.destroy();
    });
    await sleep(l.rttMs / 2);
    const raw: string[] = [];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
      const name = upRes.rawHeaders[i].toLowerCase();
      if (name === "connection" || name === "keep-alive") continue;
      raw.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
    }
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, raw);
    for await (const chunk of upRes as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; at += SLICE) {
        const piece = chunk.subarray(at, at + SLICE);
        await bucket.take(piece.length);
        if (res.destroyed) return;
        counters.bytes += piece.length;
        await write(res, piece);
      }
    }
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    get link() {
      return link;
    },
    set link(l: LinkSetting) {
      link = l;
      bucket.bytesPerSecond = linkRate(l);
    },
    counters,
    reset() {
      counters.requests = 0;
      counters.connections = 0;
      counters.bytes = 0;
    },
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      httpAgent.destroy();
      httpsAgent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function linkRate(l: LinkSetting): number {
  return l.mbit > 0 ? (l.mbit * 1e6) / 8 : 0;
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    if (res.write(chunk)) resolve();
    else {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    }
  });
}
