// Starts the real Debian `docker-registry` (distribution 2.8) on a free loopback port with its
// own config file and temporary storage, for tests that must talk to a real registry.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface RegistryUser {
  username: string;
  password: string;
}

export interface TokenAuthConfig {
  /** URL of the token server the registry sends clients to. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM file with the certificate(s) whose keys sign tokens. */
  rootCertBundle: string;
}

export interface StartRegistryOptions {
  /** Basic auth with an htpasswd file (bcrypt, made with `htpasswd -Bbn`). */
  users?: RegistryUser[];
  /** Bearer token auth with tokens from a token server of the test's own. */
  token?: TokenAuthConfig;
  /** How long to wait for GET /v2/ to answer (default 20 s). */
  readyTimeoutMs?: number;
}

export interface RunningRegistry {
  /** "127.0.0.1:PORT": the registry part of a reference. */
  readonly host: string;
  readonly port: number;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  readonly dir: string;
  /** The registry's stderr so far (for failing tests). */
  logs(): string;
  stop(): Promise<void>;
}

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The environment without REGISTRY_* (distribution reads them as config overrides). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")),
  );
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "seekable-registry-"));
  try {
    // A port found free can be taken before the registry binds it: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await startOnce(dir, await freePort(), options);
      } catch (e) {
        lastError = e;
      }
    }
    throw lastError;
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

async function startOnce(
  dir: string,
  port: number,
  options: StartRegistryOptions,
): Promise<RunningRegistry> {
  const auth: Record<string, unknown> = {};
  if (options.users) {
    const lines: string[] = [];
    for (const u of options.users) {
      const { stdout } = await run("htpasswd", ["-Bbn", u.username, u.password]);
      lines.push(stdout.trim());
    }
    const path = join(dir, "htpasswd");
    await writeFile(path, `${lines.join("\n")}\n`);
    auth.htpasswd = { realm: "seekable-test", path };
  }
  if (options.token) {
    auth.token = {
      realm: options.token.realm,
      service: options.token.service,
      issuer: options.token.issuer,
      rootcertbundle: options.token.rootCertBundle,
    };
  }
  // JSON is YAML, and spares us quoting rules.
  const config = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: join(dir, "data") },
      delete: { enabled: true },
      redirect: { disable: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}`, secret: "seekable-test-secret" },
    ...(Object.keys(auth).length > 0 && { auth }),
  };
  const configPath = join(dir, "config.yml");
  await writeFile(configPath, JSON.stringify(config, null, 2));

  const child = spawn("docker-registry", ["serve", configPath], {
    env: cleanEnv(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    log = (log + d).slice(-65536);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const spawnFailed = new Promise<never>((_, reject) => child.once("error", reject));
  spawnFailed.catch(() => {});

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  for (;;) {
    const state = await Promise.race([
      exited.then((code) => ({ exited: code })),
      spawnFailed,
      probe(url).then((ok) => ({ ok })),
    ]);
    if ("exited" in state)
      throw new Error(`docker-registry exited with ${state.exited}: ${log.trim()}`);
    if (state.ok) break;
    if (Date.now() > deadline) {
      await stopChild(child, exited);
      throw new Error(`docker-registry did not answer GET /v2/ on ${url}: ${log.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopped = false;
  return {
    host: `127.0.0.1:${port}`,
    port,
    url,
    dir,
    logs: () => log,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild(child, exited);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Any HTTP answer to GET /v2/ (200, or 401 with auth) means the registry is serving. */
async function probe(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200 || res.status === 401;
  } catch {
    return false;
  }
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}
