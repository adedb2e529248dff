import { createRequire } from "node:module";
import type { Readable } from "node:stream";
import type { Agent as AgentType, Dispatcher, interceptors } from "undici";
import { Authenticator } from "./auth.js";
import { type Body, discardBody, meterBody, readErrorBody } from "./body.js";
import { type CredentialSource, type Credentials, dockerConfigCredentials } from "./credentials.js";
import { RegistryError } from "./errors.js";
import { httpError } from "./http-error.js";
import { isLoopbackHost, registryHost } from "./reference.js";
import { classifyNetworkError, DEFAULT_RETRY, type RetryPolicy, withRetries } from "./retry.js";
import { countRequest, newStats, type RegistryStats } from "./stats.js";
import { parseWwwAuthenticate } from "./www-authenticate.js";

// undici's index loads ~110 modules (fetch, WebSocket, caches, mocks, proxies): a third of
// the start-up of every command. The client needs three pieces (~27 modules), taken from the
// exact version the package pins.
const require = createRequire(import.meta.url);
const Agent: typeof AgentType = require("undici/lib/dispatcher/agent.js");
const redirectInterceptor: typeof interceptors.redirect = require("undici/lib/interceptor/redirect.js");
const apiRequest: Dispatcher["request"] = require("undici/lib/api/api-request.js");

export interface Timeouts {
  /** TCP/TLS connect (default 10 s). */
  connectMs: number;
  /** From request sent to response headers (default 30 s). */
  headersMs: number;
  /** Longest silence while a body streams (default 30 s). */
  bodyMs: number;
  /**
   * Slowest average rate a body may keep over a window (default 1 KiB/s): below it the
   * transfer is retried once on a fresh connection, then fails. 0 disables the floor.
   */
  minBytesPerSecond: number;
  /** The window the rate is averaged over (default 30 s). */
  rateWindowMs: number;
  /** Longest time for one attempt, from sending to the end of the body (default: none). */
  deadlineMs?: number;
}

export interface RegistryClientOptions {
  /**
   * Explicit credentials for every registry, or a lookup. Default: ~/.docker/config.json
   * (or $DOCKER_CONFIG), then anonymous.
   */
  credentials?: Credentials | CredentialSource;
  /**
   * true: plain HTTP everywhere; a list: plain HTTP for those registries; false: HTTPS even
   * on loopback. Default: plain HTTP for localhost and 127.0.0.0/8 only. Only true or a
   * listed registry allows credentials over plain HTTP to a host that is not loopback.
   */
  plainHttp?: boolean | readonly string[];
  timeouts?: Partial<Timeouts>;
  retry?: Partial<RetryPolicy>;
  /** Keep-alive connections per origin (default 16): many small range requests in parallel. */
  connections?: number;
  maxRedirections?: number;
  userAgent?: string;
  /** Use this dispatcher instead of a private keep-alive Agent (it is not closed by close()). */
  dispatcher?: Dispatcher;
}

/** One HTTP exchange with a registry, before auth and retries. */
export interface RegistryRequest {
  method: "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";
  registry: string;
  /** Path and query below the registry's origin, or an absolute URL (upload locations). */
  path: string;
  /** Token scopes the request needs. */
  scopes: string[];
  /** What error messages name: a reference or URL. */
  subject: string;
  headers?: Record<string, string>;
  /** Buffers can be re-sent after a 401 or a failure; streams cannot. */
  body?: Uint8Array | string | Readable | AsyncIterable<Uint8Array> | null;
  signal?: AbortSignal;
  /** Extra counters (e.g. one blob source's), besides the client's. */
  stats?: RegistryStats;
  /** Statuses the handler wants to see; any other becomes a RegistryError. Default 2xx. */
  expect?: readonly number[];
  /**
   * Retry on retryable failures (default true). false: one attempt, its error unchanged, for
   * non-idempotent uploads and for callers that retry with a Retrier of their own.
   */
  retry?: boolean;
  timeouts?: Partial<Timeouts>;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Body;
  /** The URL the request was sent to (before any redirect). */
  url: URL;
}

/** What a registry host has shown it cannot do, remembered for the client's lifetime. */
export interface HostQuirks {
  /** false after a 400/501 or a 200 to a multi-range request. */
  multiRange?: boolean;
}

/**
 * An OCI distribution client: one keep-alive connection pool, auth state and per-host quirks
 * shared by every operation. Operations live in manifest.ts, blob.ts and upload.ts; this
 * class holds the pieces they share and the request loop (auth, redirects, retries).
 */
export class RegistryClient {
  readonly stats: RegistryStats = newStats();
  readonly timeouts: Timeouts;
  readonly retryPolicy: RetryPolicy;
  readonly auth: Authenticator;
  private readonly dispatcher: Dispatcher;
  private readonly ownAgent: AgentType | undefined;
  private readonly quirks = new Map<string, HostQuirks>();
  private readonly pinned = new Map<string, "http" | "https">();
  /** Registries whose credentials were not sent (plain HTTP to a host not on loopback). */
  private readonly withheld = new Set<string>();
  private readonly userAgent: string;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.timeouts = {
      connectMs: 10_000,
      headersMs: 30_000,
      bodyMs: 30_000,
      minBytesPerSecond: 1024,
      rateWindowMs: 30_000,
      ...options.timeouts,
    };
    this.retryPolicy = { ...DEFAULT_RETRY, ...options.retry };
    this.userAgent = options.userAgent ?? "seekable/0.1";
    let base = options.dispatcher;
    if (!base) {
      this.ownAgent = new Agent({
        connections: options.connections ?? 16,
        keepAliveTimeout: 30_000,
        connect: { timeout: this.timeouts.connectMs },
      });
      base = this.ownAgent;
    }
    // Redirects (blob GETs to object storage) keep Range; undici drops Authorization
    // whenever the origin changes.
    const composed = base.compose(
      redirectInterceptor({ maxRedirections: options.maxRedirections ?? 5 }),
    );
    // Dispatcher.request is added to undici's prototype by its index, which is not loaded.
    if (typeof composed.request !== "function")
      Object.defineProperty(composed, "request", { value: apiRequest });
    this.dispatcher = composed;
    const creds = options.credentials;
    const source: CredentialSource =
      creds === undefined
        ? dockerConfigCredentials()
        : typeof creds === "function"
          ? creds
          : async () => creds;
    // Credentials never cross the network in clear unless the caller allowed plain HTTP to
    // that registry explicitly: an http:// blob URL alone is not consent.
    const guarded: CredentialSource = async (registry) => {
      const found = await source(registry);
      if (found && !this.clearTextAllowed(this.scheme(registry), registryHost(registry))) {
        this.withheld.add(registry);
        return undefined;
      }
      return found;
    };
    this.auth = new Authenticator(guarded, {
      dispatcher: this.dispatcher,
      clearTextAllowed: (url) =>
        this.clearTextAllowed(url.protocol === "http:" ? "http" : "https", url.host),
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyMs,
      floor: {
        minBytesPerSecond: this.timeouts.minBytesPerSecond,
        windowMs: this.timeouts.rateWindowMs,
      },
      userAgent: this.userAgent,
      stats: [this.stats],
    });
  }

  /**
   * Uses this scheme for a registry whatever the defaults say: a blob URL names its own
   * transport (`https` is TLS even on loopback, `http` is not upgraded). Call before the
   * first request to that registry.
   */
  useScheme(registry: string, scheme: "http" | "https"): void {
    this.pinned.set(registry, scheme);
  }

  /** "http" or "https" for a registry name. */
  scheme(registry: string): "http" | "https" {
    const pin = this.pinned.get(registry);
    if (pin) return pin;
    const p = this.options.plainHttp;
    if (p === true) return "http";
    if (p === false) return "https";
    if (Array.isArray(p) && p.includes(registry)) return "http";
    return isLoopbackHost(registry) ? "http" : "https";
  }

  /**
   * Whether credentials may go to `host` over `scheme`: always over TLS; over plain HTTP only
   * to loopback, or where plain HTTP was asked for explicitly (plainHttp true or listed).
   */
  private clearTextAllowed(scheme: "http" | "https", host: string): boolean {
    if (scheme === "https" || isLoopbackHost(host)) return true;
    const p = this.options.plainHttp;
    return (
      p === true ||
      (Array.isArray(p) && p.some((r: string) => r === host || registryHost(r) === host))
    );
  }

  /** The base URL of a registry's API ("https://registry-1.docker.io"). */
  origin(registry: string): string {
    return `${this.scheme(registry)}://${registryHost(registry)}`;
  }

  /** Mutable record of what this registry cannot do. */
  hostQuirks(registry: string): HostQuirks {
    let q = this.quirks.get(registry);
    if (!q) {
      q = {};
      this.quirks.set(registry, q);
    }
    return q;
  }

  /**
   * Sends a request and hands an expected response to `handle`, with auth, redirects and
   * retries (429 with Retry-After, 5xx but 501, resets, timeouts, and retryable errors
   * thrown by the handler such as a truncated body). The handler must consume or discard
   * the body.
   */
  async call<T>(req: RegistryRequest, handle: (res: RegistryResponse) => Promise<T>): Promise<T> {
    const sinks = [this.stats, req.stats];
    const once = async () => {
      const { res, note } = await this.exchange(req);
      const ok = req.expect
        ? req.expect.includes(res.status)
        : res.status >= 200 && res.status < 300;
      if (!ok) {
        const held = res.status === 401 && this.withheld.has(req.registry);
        const err = await httpError(
          req.subject,
          { statusCode: res.status, headers: res.headers, body: res.body },
          sinks,
          held ? "credentials not sent over plain HTTP to a host that is not loopback" : note,
        );
        throw held ? err.withReason(err.reason, { code: "CREDENTIALS_WITHHELD" }) : err;
      }
      try {
        return await handle(res);
      } catch (e) {
        discardBody(res.body);
        if (req.signal?.aborted) throw req.signal.reason;
        throw classifyNetworkError(req.subject, e);
      }
    };
    // retry: false sends once and leaves the error as it is (retryable or not), for callers
    // that cannot repeat the request or that count attempts themselves (blob resumes).
    return req.retry === false ? once() : withRetries(this.retryPolicy, req.signal, once);
  }

  /** One send, repeated at most twice to answer auth challenges. */
  private async exchange(req: RegistryRequest): Promise<{ res: RegistryResponse; note?: string }> {
    const url = /^https?:\/\//.test(req.path)
      ? new URL(req.path)
      : new URL(req.path, this.origin(req.registry));
    const replayable =
      req.body === undefined ||
      req.body === null ||
      typeof req.body === "string" ||
      req.body instanceof Uint8Array;
    const t = { ...this.timeouts, ...req.timeouts };
    const floor = { minBytesPerSecond: t.minBytesPerSecond, windowMs: t.rateWindowMs };
    let previous: string[] | undefined;
    for (let round = 0; ; round++) {
      const deadline = startDeadline(req.subject, t.deadlineMs, req.signal);
      const signal = deadline?.signal ?? req.signal;
      let authorization: string | undefined;
      try {
        authorization = await this.auth.authorization(
          req.registry,
          req.scopes,
          req.subject,
          signal,
        );
      } catch (e) {
        deadline?.clear();
        throw e;
      }
      const headers: Record<string, string> = { "user-agent": this.userAgent, ...req.headers };
      if (authorization) headers.authorization = authorization;
      let raw: Dispatcher.ResponseData;
      try {
        raw = await this.dispatcher.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: req.method,
          headers,
          body: (req.body ?? null) as Dispatcher.DispatchOptions["body"],
          signal,
          headersTimeout: t.headersMs,
          bodyTimeout: t.bodyMs,
        });
      } catch (e) {
        deadline?.clear();
        if (req.signal?.aborted) throw req.signal.reason;
        if (signal?.aborted) throw signal.reason;
        throw classifyNetworkError(req.subject, e);
      }
      countRequest([this.stats, req.stats]);
      const res: RegistryResponse = {
        status: raw.statusCode,
        headers: raw.headers,
        // Every body has the floor, whoever reads it; the deadline ends with the body.
        body: meterBody(raw.body, req.subject, floor, deadline?.clear),
        url,
      };
      if (res.status !== 401 || round >= 2) return { res };
      const outcome = await this.auth.challenge(
        req.registry,
        req.scopes,
        parseWwwAuthenticate(res.headers["www-authenticate"]),
        authorization,
        req.subject,
        previous,
        req.signal,
      );
      previous = outcome.wanted;
      if (!outcome.retry || !replayable) return { res, note: outcome.note };
      await readErrorBody(res.body, [this.stats, req.stats]); // small: read it so the connection stays open
    }
  }

  /** Closes idle connections; in-flight requests fail. */
  async close(): Promise<void> {
    await this.ownAgent?.close();
  }
}

/**
 * A signal that aborts when the caller's does, or with a retryable timeout error after `ms`
 * (the whole attempt: headers and body). undefined when there is no deadline.
 */
function startDeadline(
  subject: string,
  ms: number | undefined,
  outer: AbortSignal | undefined,
): { signal: AbortSignal; clear: () => void } | undefined {
  if (ms === undefined || !(ms > 0)) return undefined;
  const ac = new AbortController();
  const forward = () => ac.abort(outer?.reason);
  if (outer?.aborted) forward();
  outer?.addEventListener("abort", forward, { once: true });
  const timer = setTimeout(
    () =>
      ac.abort(
        new RegistryError(subject, `no complete response within ${ms / 1000} s`, {
          kind: "timeout",
          code: "DEADLINE",
          retryable: true,
        }),
      ),
    ms,
  );
  const clear = () => {
    clearTimeout(timer);
    outer?.removeEventListener("abort", forward);
  };
  return { signal: ac.signal, clear };
}

/** A header as one string (undici gives arrays for repeated headers). */
export function header(
  res: { headers: Record<string, string | string[] | undefined> },
  name: string,
): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function requireHeader(res: RegistryResponse, name: string, subject: string): string {
  const v = header(res, name);
  if (v === undefined)
    throw new RegistryError(subject, `response has no ${name} header`, { kind: "protocol" });
  return v;
}
