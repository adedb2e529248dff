import type { Dispatcher } from "undici";
import { meterBody, readBody, type TransferFloor } from "./body.js";
import type { CredentialSource, Credentials } from "./credentials.js";
import { RegistryError } from "./errors.js";
import { httpError } from "./http-error.js";
import { classifyNetworkError } from "./retry.js";
import type { RegistryStats } from "./stats.js";
import type { Challenge } from "./www-authenticate.js";

/** Scope strings for a repository: "repository:NAME:pull" or ":pull,push". */
export function repositoryScope(
  repository: string,
  actions: "pull" | "push" | "pull,push",
): string {
  return `repository:${repository}:${actions === "push" ? "pull,push" : actions}`;
}

interface HostAuth {
  scheme: "basic" | "bearer";
  realm?: string;
  service?: string;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** What a 401 taught us: whether sending again can succeed, and if not, why. */
export interface ChallengeOutcome {
  retry: boolean;
  note?: string;
  /** Scopes a token was fetched for. */
  wanted?: string[];
}

export interface TokenFetchContext {
  dispatcher: Dispatcher;
  headersTimeout: number;
  bodyTimeout: number;
  floor: TransferFloor;
  /** Whether credentials may be sent to this token realm (plain HTTP off loopback: no). */
  clearTextAllowed: (realm: URL) => boolean;
  userAgent: string;
  stats: readonly (RegistryStats | undefined)[];
}

/** Tokens live 60 s unless the server says otherwise (distribution token spec). */
const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Renew a little early so a token does not expire in flight. */
const EXPIRY_MARGIN_MS = 5_000;

/**
 * Registry authentication: learns each registry's scheme from its first 401, then sends
 * Basic credentials or a Bearer token proactively. Tokens are cached per registry and
 * scope set until they expire, and refreshed when the registry rejects one.
 */
export class Authenticator {
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly credentials = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly source: CredentialSource,
    private readonly ctx: TokenFetchContext,
  ) {}

  /** Token requests made so far (for tests and diagnostics). */
  tokenRequests = 0;

  private creds(registry: string): Promise<Credentials | undefined> {
    let c = this.credentials.get(registry);
    if (!c) {
      c = this.source(registry);
      this.credentials.set(registry, c);
    }
    return c;
  }

  /** The Authorization header to send, or undefined while the registry's scheme is unknown. */
  async authorization(
    registry: string,
    scopes: string[],
    subject: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const host = this.hosts.get(registry);
    if (!host) return undefined;
    if (host.scheme === "basic") {
      const c = await this.creds(registry);
      return c ? basicHeader(c) : undefined;
    }
    return (await this.token(registry, host, scopes, subject, signal)).header;
  }

  /**
   * Handles a 401: remembers the challenge, drops a rejected token and fetches a new one.
   * `previous` is the scope set fetched for the last 401 of the same request: a fresh token
   * for the same scopes refused again means more tries cannot help.
   */
  async challenge(
    registry: string,
    scopes: string[],
    challenges: Challenge[],
    sent: string | undefined,
    subject: string,
    previous: string[] | undefined,
    signal?: AbortSignal,
  ): Promise<ChallengeOutcome> {
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    const basic = challenges.find((c) => c.scheme === "basic");
    const creds = await this.creds(registry);
    if (bearer) {
      const host: HostAuth = {
        scheme: "bearer",
        realm: bearer.params.realm,
        service: bearer.params.service,
      };
      this.hosts.set(registry, host);
      const wanted = unionScopes(scopes, (bearer.params.scope ?? "").split(" "));
      if (previous && wanted.every((s) => previous.includes(s))) {
        const why =
          bearer.params.error === "insufficient_scope"
            ? `insufficient scope for ${wanted.join(" ")}`
            : creds
              ? "token rejected"
              : "anonymous token rejected";
        return { retry: false, note: why, wanted };
      }
      const key = tokenKey(registry, wanted);
      if (this.tokens.get(key)?.header === sent) this.tokens.delete(key);
      if (this.tokens.get(tokenKey(registry, scopes))?.header === sent)
        this.tokens.delete(tokenKey(registry, scopes));
      const token = await this.token(registry, host, wanted, subject, signal);
      // Later requests with the narrower scope list reuse the broader token.
      this.tokens.set(tokenKey(registry, scopes), token);
      return { retry: true, wanted };
    }
    if (basic) {
      this.hosts.set(registry, { scheme: "basic" });
      if (!creds || creds.username === undefined)
        return { retry: false, note: `no credentials for ${registry}` };
      if (sent === basicHeader(creds))
        return { retry: false, note: `credentials for ${registry} rejected` };
      return { retry: true };
    }
    return { retry: false };
  }

  private async token(
    registry: string,
    host: HostAuth,
    scopes: string[],
    subject: string,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const key = tokenKey(registry, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached;
    // Concurrent requests share one token request.
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetchToken(registry, host, scopes, subject, signal).finally(() =>
        this.pending.delete(key),
      );
      this.pending.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return t;
  }

  private async fetchToken(
    registry: string,
    host: HostAuth,
    scopes: string[],
    subject: string,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(host.realm as string);
    } catch {
      throw new RegistryError(subject, `invalid token realm ${JSON.stringify(host.realm)}`, {
        kind: "protocol",
      });
    }
    // A realm on plain HTTP off loopback gets an anonymous request: never a password in clear.
    const creds = this.ctx.clearTextAllowed(realm) ? await this.creds(registry) : undefined;
    const headers: Record<string, string> = {
      "user-agent": this.ctx.userAgent,
      accept: "application/json",
    };
    let method: "GET" | "POST" = "GET";
    let body: string | undefined;
    if (creds?.identityToken !== undefined) {
      // An identity token is an OAuth2 refresh token: only the POST flow takes it.
      method = "POST";
      headers["content-type"] = "application/x-www-form-urlencoded";
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: creds.identityToken,
        client_id: "seekable",
      });
      if (host.service) form.set("service", host.service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      body = form.toString();
    } else {
      if (host.service) realm.searchParams.set("service", host.service);
      for (const s of scopes) realm.searchParams.append("scope", s);
      if (creds) headers.authorization = basicHeader(creds);
    }
    const tokenSubject = `${subject}: token server ${realm.origin}${realm.pathname}`;
    this.tokenRequests++;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.ctx.dispatcher.request({
        origin: realm.origin,
        path: `${realm.pathname}${realm.search}`,
        method,
        headers,
        body,
        signal,
        headersTimeout: this.ctx.headersTimeout,
        bodyTimeout: this.ctx.bodyTimeout,
      });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw classifyNetworkError(tokenSubject, e);
    }
    for (const s of this.ctx.stats) if (s) s.requests++;
    if (res.statusCode !== 200) {
      const note =
        res.statusCode === 401 || res.statusCode === 403
          ? creds
            ? "credentials rejected"
            : "anonymous access refused"
          : undefined;
      const e = await httpError(tokenSubject, res, this.ctx.stats, note);
      throw new RegistryError(subject, `token request failed: ${e.reason}`, {
        kind: e.status === 401 || e.status === 403 ? "unauthorized" : e.kind,
        status: e.status,
        code: e.code,
        retryable: e.retryable,
        retryAfterMs: e.retryAfterMs,
      });
    }
    let parsed: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      parsed = JSON.parse(
        (
          await readBody(
            meterBody(res.body, tokenSubject, this.ctx.floor),
            1 << 20,
            this.ctx.stats,
            tokenSubject,
          )
        ).toString("utf8"),
      );
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(tokenSubject, "token response is not JSON", { kind: "protocol" });
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token)
      throw new RegistryError(tokenSubject, "token response has no token", { kind: "protocol" });
    const lifetimeS =
      typeof parsed.expires_in === "number" && parsed.expires_in > 0
        ? parsed.expires_in
        : DEFAULT_TOKEN_LIFETIME_S;
    const issued = parsed.issued_at ? Date.parse(parsed.issued_at) : Number.NaN;
    // A skewed issuer clock must not make a token look expired at birth: cap issued_at at now.
    const start = Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now());
    return {
      header: `Bearer ${token}`,
      expiresAt: start + lifetimeS * 1000 - Math.min(EXPIRY_MARGIN_MS, (lifetimeS * 1000) / 2),
    };
  }
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ""}:${c.password ?? ""}`).toString("base64")}`;
}

/**
 * Merges scope lists into one canonical list: one entry per resource with its actions
 * sorted ("repository:x:pull" + "repository:x:push,pull" -> "repository:x:pull,push").
 * Registries build the challenge's action list from a Go map, so its order varies.
 */
export function unionScopes(a: readonly string[], b: readonly string[] = []): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of [...a, ...b]) {
    if (scope === "") continue;
    const last = scope.lastIndexOf(":");
    const resource = last > 0 ? scope.slice(0, last) : scope;
    const actions = byResource.get(resource) ?? new Set<string>();
    if (last > 0)
      for (const action of scope.slice(last + 1).split(",")) if (action) actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource]
    .map(([resource, actions]) =>
      actions.size ? `${resource}:${[...actions].sort().join(",")}` : resource,
    )
    .sort();
}

function tokenKey(registry: string, scopes: string[]): string {
  return `${registry} ${unionScopes(scopes).join(" ")}`;
}
