import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { RegistryError } from "./errors.js";
import { DOCKER_HUB } from "./reference.js";

/** A user name and password, or an identity (OAuth2 refresh) token from a credential helper. */
export type Credentials =
  | { username: string; password: string; identityToken?: undefined }
  | { identityToken: string; username?: string; password?: undefined };

/** Looks up credentials for a registry name ("docker.io", "127.0.0.1:5000"); undefined = anonymous. */
export type CredentialSource = (registry: string) => Promise<Credentials | undefined>;

/**
 * Parses "user:pass" (the password may hold colons). A malformed text is a RegistryError of
 * kind "usage", code BAD_CREDENTIALS, that never repeats the text (it may be a secret).
 */
export function parseCredentials(text: string): Credentials {
  const i = text.indexOf(":");
  if (i <= 0)
    throw new RegistryError("credentials", "expected USER:PASSWORD", {
      kind: "usage",
      code: "BAD_CREDENTIALS",
    });
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

interface DockerConfig {
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; identitytoken?: string }
  >;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

// Docker Hub's historical key in config.json and in credential helpers.
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

function keyHost(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase();
  return host === "index.docker.io" || host === "registry-1.docker.io" ? DOCKER_HUB : host;
}

export interface DockerConfigOptions {
  /** Directory holding config.json; default $DOCKER_CONFIG, else ~/.docker. */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Time limit for a docker-credential-* helper (default 30 s). */
  helperTimeoutMs?: number;
}

/**
 * Credentials the way the docker CLI finds them: `credHelpers[host]`, else `credsStore`,
 * else `auths[host].auth` (base64 user:pass) or `identitytoken`. A missing file is anonymous.
 */
export function dockerConfigCredentials(options: DockerConfigOptions = {}): CredentialSource {
  const env = options.env ?? process.env;
  const dir = options.configDir ?? env.DOCKER_CONFIG ?? join(homedir(), ".docker");
  const path = join(dir, "config.json");
  let config: Promise<DockerConfig | undefined> | undefined;
  const load = async (): Promise<DockerConfig | undefined> => {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new RegistryError(path, `cannot read: ${(e as Error).message}`, {
        kind: "usage",
        cause: e,
      });
    }
    try {
      return JSON.parse(text) as DockerConfig;
    } catch (e) {
      throw new RegistryError(path, `invalid JSON: ${(e as Error).message}`, {
        kind: "usage",
        cause: e,
      });
    }
  };
  return async (registry) => {
    config ??= load();
    const cfg = await config;
    if (!cfg) return undefined;
    const host = keyHost(registry);
    const helperKey = Object.keys(cfg.credHelpers ?? {}).find((k) => keyHost(k) === host);
    const helper = helperKey === undefined ? cfg.credsStore : cfg.credHelpers?.[helperKey];
    if (helper) {
      const serverUrl = host === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
      const found = await runCredentialHelper(
        helper,
        serverUrl,
        env,
        options.helperTimeoutMs ?? 30_000,
      );
      if (found || helperKey !== undefined) return found;
    }
    const entry = Object.entries(cfg.auths ?? {}).find(([k]) => keyHost(k) === host)?.[1];
    if (!entry) return undefined;
    if (entry.identitytoken) return { identityToken: entry.identitytoken };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i < 0)
        throw new RegistryError(path, `auths["${registry}"].auth is not base64 of user:password`, {
          kind: "usage",
        });
      return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    }
    if (entry.username !== undefined && entry.password !== undefined) {
      return { username: entry.username, password: entry.password };
    }
    return undefined;
  };
}

/** Runs `docker-credential-<name> get` with the server URL on stdin. */
export function runCredentialHelper(
  name: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 30_000,
): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ["get"], {
      env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    child.stdin.on("error", () => {}); // a helper that exits early closes its stdin
    child.stdin.end(serverUrl);
    child.on("error", (e) =>
      reject(
        new RegistryError(program, `cannot run credential helper: ${e.message}`, {
          kind: "unauthorized",
          cause: e,
        }),
      ),
    );
    child.on("close", (code, signal) => {
      const text = `${out}\n${err}`;
      if (code !== 0) {
        // The protocol's way of saying "nothing stored for this server".
        if (/credentials not found/i.test(text)) return resolve(undefined);
        const why = signal ? `killed by ${signal}` : `exited with ${code}`;
        return reject(
          new RegistryError(program, `credential helper ${why}: ${err.trim() || out.trim()}`, {
            kind: "unauthorized",
          }),
        );
      }
      try {
        const parsed = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!parsed.Secret) return resolve(undefined);
        // "<token>" marks an identity token rather than a password.
        if (parsed.Username === "<token>") return resolve({ identityToken: parsed.Secret });
        resolve({ username: parsed.Username ?? "", password: parsed.Secret });
      } catch {
        reject(
          new RegistryError(program, "credential helper printed invalid JSON", {
            kind: "unauthorized",
          }),
        );
      }
    });
  });
}
