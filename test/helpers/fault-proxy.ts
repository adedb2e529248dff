// A small HTTP proxy in front of the real registry that injects the faults real registries,
// CDNs and networks produce (resets, 5xx, 429, ignored or refused ranges, truncation, stalls,
// redirects, corruption). Everything it does not break comes from the real registry.
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, but cut the TCP connection (RST) after this many body bytes. */
  | { kind: "reset"; after: number }
  /** Cut the connection before any response. */
  | { kind: "reset-before-headers" }
  /** Forward the headers (Content-Length kept) and this many body bytes, then close cleanly. */
  | { kind: "truncate"; after: number }
  /** Forward without the Range header: the registry answers 200 with the whole blob. */
  | { kind: "ignore-range" }
  /** Wait before forwarding (headers timeout). */
  | { kind: "delay"; ms: number }
  /** Forward headers and this many bytes, then send nothing more (body timeout). */
  | { kind: "stall"; after: number }
  | { kind: "redirect"; location: string; status?: number }
  /** Forward with the byte at `at` of the body flipped. */
  | { kind: "corrupt"; at: number }
  /** Forward the headers at once, then the body `bytes` at a time every `everyMs` (never idle). */
  | { kind: "drip"; bytes: number; everyMs: number };

export interface ProxyLogEntry {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  fault?: Fault["kind"];
  /** Status sent to the client. */
  status?: number;
  /** Whether the response body was sent to the end (false: the client hung up first). */
  finished?: boolean;
  bytesSent: number;
}

export type Rule = (req: IncomingMessage, entry: ProxyLogEntry) => Fault | undefined;

export interface FaultProxy {
  readonly url: string;
  readonly host: string;
  readonly log: ProxyLogEntry[];
  rule: Rule | undefined;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Headers added when forwarding (e.g. credentials, like a pre-signed URL carries). */
  addHeaders?: Record<string, string>;
}

export async function startFaultProxy(
  target: string,
  options: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const log: ProxyLogEntry[] = [];
  const proxy: { rule: Rule | undefined } = { rule: undefined };
  const server: Server = createServer((req, res) => {
    const entry: ProxyLogEntry = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      range: req.headers.range,
      authorization: req.headers.authorization,
      bytesSent: 0,
    };
    log.push(entry);
    const fault = proxy.rule?.(req, entry);
    entry.fault = fault?.kind;
    handle(req, res, fault, entry).catch(() => res.destroy());
  });
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    fault: Fault | undefined,
    entry: ProxyLogEntry,
  ) {
    if (fault?.kind === "status") {
      await drain(req);
      entry.status = fault.status;
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
      res.end(fault.body ?? "");
      return;
    }
    if (fault?.kind === "redirect") {
      await drain(req);
      res.writeHead(fault.status ?? 307, { location: fault.location, "content-length": "0" });
      res.end();
      return;
    }
    if (fault?.kind === "reset-before-headers") {
      await drain(req);
      req.socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === "delay") await new Promise((r) => setTimeout(r, fault.ms));
    const headers: OutgoingHttpHeaders = { ...req.headers, ...options.addHeaders };
    if (fault?.kind === "ignore-range") delete headers.range;
    const up = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    });
    req.pipe(up);
    const upRes = await new Promise<IncomingMessage>((resolve, reject) => {
      up.on("response", resolve);
      up.on("error", reject);
    });
    entry.status = upRes.statusCode;
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
    res.on("close", () => {
      entry.finished = res.writableFinished;
      upRes.destroy();
    });
    let sent = 0;
    for await (const chunk of upRes as AsyncIterable<Buffer>) {
      let piece = chunk;
      if (fault?.kind === "corrupt" && fault.at >= sent && fault.at < sent + piece.length) {
        piece = Buffer.from(piece);
        piece[fault.at - sent] = (piece[fault.at - sent] as number) ^ 0xff;
      }
      if (fault?.kind === "reset" || fault?.kind === "truncate" || fault?.kind === "stall") {
        const room = fault.after - sent;
        if (room < piece.length) {
          await write(res, piece.subarray(0, Math.max(0, room)));
          entry.bytesSent += Math.max(0, room);
          if (fault.kind === "reset") req.socket.resetAndDestroy();
          else if (fault.kind === "truncate") req.socket.end();
          // "stall": keep the socket open and silent until the client gives up.
          upRes.destroy();
          return;
        }
      }
      if (fault?.kind === "drip") {
        for (let i = 0; i < piece.length && !res.destroyed; i += fault.bytes) {
          await write(res, piece.subarray(i, i + fault.bytes));
          entry.bytesSent += Math.min(fault.bytes, piece.length - i);
          await new Promise((r) => setTimeout(r, fault.everyMs));
        }
        sent += piece.length;
        continue;
      }
      if (res.destroyed) return;
      await write(res, piece);
      sent += piece.length;
      entry.bytesSent += piece.length;
    }
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    log,
    get rule() {
      return proxy.rule;
    },
    set rule(r: Rule | undefined) {
      proxy.rule = r;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
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

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // discard the request body
  }
}
