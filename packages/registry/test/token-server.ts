// A token server for distribution's `auth.token` mode. Debian ships no token server, so this
// one issues real RS256 JWTs (x5c chain) that the real registry verifies against our cert.
import { execFile } from "node:child_process";
import { createPrivateKey, type KeyObject, randomUUID, sign } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TokenRequestLog {
  service: string | null;
  scopes: string[];
  user: string | undefined;
  status: number;
}

export interface TokenServer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  readonly log: TokenRequestLog[];
  /** The next token is already expired for the registry while claiming a long life. */
  expireNext: boolean;
  /** expires_in sent with tokens (default 300). */
  expiresIn: number;
  close(): Promise<void>;
}

/** Makes a self-signed RSA certificate in `dir` with openssl. */
async function makeCert(
  dir: string,
): Promise<{ key: KeyObject; certDer: Buffer; certPath: string }> {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-subj",
    "/CN=seekable-test-token-issuer",
  ]);
  const pem = await readFile(certPath, "utf8");
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return {
    key: createPrivateKey(await readFile(keyPath)),
    certDer: Buffer.from(b64, "base64"),
    certPath,
  };
}

/**
 * Grants what is asked to `users` with the right password, only "pull" to anonymous
 * clients, and 401 to wrong passwords.
 */
export async function startTokenServer(
  dir: string,
  users: Record<string, string>,
): Promise<TokenServer> {
  const { key, certDer, certPath } = await makeCert(dir);
  const service = "seekable-registry";
  const issuer = "seekable-issuer";
  const log: TokenRequestLog[] = [];
  const state = { expireNext: false, expiresIn: 300 };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const scopes = url.searchParams.getAll("scope");
    let user: string | undefined;
    const auth = req.headers.authorization;
    const reply = (status: number, body: unknown) => {
      log.push({ service: url.searchParams.get("service"), scopes, user, status });
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (auth?.startsWith("Basic ")) {
      const [name, pass] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      user = name;
      if (name === undefined || users[name] !== pass) {
        return reply(401, {
          errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }],
        });
      }
    }
    const access = scopes.flatMap((s) => {
      const first = s.indexOf(":");
      const last = s.lastIndexOf(":");
      if (first < 0 || last <= first) return [];
      const actions = s
        .slice(last + 1)
        .split(",")
        .filter((a) => user !== undefined || a === "pull");
      return [{ type: s.slice(0, first), name: s.slice(first + 1, last), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    // Beyond distribution's 60 s leeway, so the registry rejects it.
    const exp = state.expireNext ? now - 300 : now + state.expiresIn;
    state.expireNext = false;
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: service,
      exp,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const input = `${enc({ typ: "JWT", alg: "RS256", x5c: [certDer.toString("base64")] })}.${enc(claims)}`;
    const token = `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
    reply(200, {
      token,
      access_token: token,
      expires_in: state.expiresIn,
      issued_at: new Date().toISOString(),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    log,
    get expireNext() {
      return state.expireNext;
    },
    set expireNext(v: boolean) {
      state.expireNext = v;
    },
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(v: number) {
      state.expiresIn = v;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
