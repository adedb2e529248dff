// Shared helpers for the benchmark scripts (plain ESM, no build step).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WORK = join(ROOT, ".work");
export const CORPUS_DIR = join(WORK, "corpus");
export const CORPUS_TAR = join(CORPUS_DIR, "layer.tar");
export const CORPUS_TGZ = join(CORPUS_DIR, "layer.tar.gz");
export const SEEKABLE = join(ROOT, "packages/cli/dist/main.js");
export const REFERENCE = join(ROOT, "tools/reference/bin/estargz-ref");
export const TIME = "/usr/bin/time";
export const MiB = 1024 * 1024;

/** Parses `--name value` and `--flag` arguments into an object. */
export function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option ${a}`);
    if (typeof defaults[key] === "boolean") out[key] = true;
    else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      out[key] = typeof defaults[key] === "number" ? Number(v) : v;
    }
  }
  return out;
}

/** Builds the real-data corpus when missing (cached by the script itself). */
export function ensureCorpus() {
  execFileSync(join(ROOT, "tools/corpus/build-layer.sh"), {
    stdio: ["ignore", "inherit", "inherit"],
  });
  return { tar: CORPUS_TAR, tgz: CORPUS_TGZ, tarSize: statSync(CORPUS_TAR).size };
}

/** Installs GNU time (Debian package `time`) when /usr/bin/time is missing (needs root). */
export function ensureTime() {
  if (existsSync(TIME)) return;
  spawnSync("apt-get", ["install", "-y", "time"], { stdio: "inherit" });
  if (!existsSync(TIME)) throw new Error("/usr/bin/time is missing: apt-get install -y time");
}

/** Ensures the seekable CLI is built. */
export function ensureSeekable() {
  if (!existsSync(SEEKABLE)) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
}

/** Returns the reference binary path, building it when a build script exists; null if absent. */
export function findReference() {
  if (existsSync(REFERENCE)) return REFERENCE;
  const build = join(ROOT, "tools/reference/build.sh");
  if (existsSync(build)) {
    const r = spawnSync(build, { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    if (r.status === 0 && existsSync(REFERENCE)) return REFERENCE;
  }
  return null;
}

/**
 * Runs a command under GNU time. stdin/stdout may be file paths. Returns wall seconds
 * (measured here), peak RSS in MiB (max RSS of the process and its waited-for children, as
 * wait4 reports it), CPU seconds, exit status and captured stdout/stderr (when not files).
 */
export function runTimed(cmd, args, { stdin, stdout, cwd = ROOT, env } = {}) {
  const stats = join(WORK, `time.${process.pid}.txt`);
  mkdirSync(WORK, { recursive: true });
  const inFd = stdin ? openSync(stdin, "r") : "ignore";
  const outFd = stdout ? openSync(stdout, "w") : "pipe";
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(TIME, ["-f", "%M %U %S", "-o", stats, cmd, ...args], {
      cwd,
      env: env ?? process.env,
      stdio: [inFd, outFd, "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (typeof inFd === "number") closeSync(inFd);
      if (typeof outFd === "number") closeSync(outFd);
      let rssKiB = Number.NaN;
      let cpu = Number.NaN;
      try {
        const last = readFileSync(stats, "utf8").trim().split("\n").pop() ?? "";
        const [m, u, s] = last.split(/\s+/).map(Number);
        rssKiB = m;
        cpu = u + s;
        rmSync(stats, { force: true });
      } catch {}
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.trim().slice(-2000)}`));
        return;
      }
      resolvePromise({ wall, rssMiB: rssKiB / 1024, cpu, stdout: out, stderr: err });
    });
  });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Formats a Markdown table from a header row and rows of cells. */
export function mdTable(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function load() {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

export function fmt(x, digits = 1) {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

// ---- a real registry on loopback -----------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts Debian's docker-registry on loopback with its own config and storage. */
export async function startRegistry() {
  const dir = await mkdtemp(join(tmpdir(), "seekable-bench-registry-"));
  const port = await freePort();
  const config = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: join(dir, "data") },
      redirect: { disable: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}`, secret: "seekable-bench-secret" },
  };
  const configPath = join(dir, "config.yml");
  await writeFile(configPath, JSON.stringify(config)); // JSON is YAML
  // distribution reads REGISTRY_* variables as config overrides: never pass any.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")),
  );
  const child = spawn("docker-registry", ["serve", configPath], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let logs = "";
  child.stderr.setEncoding("utf8").on("data", (d) => {
    logs = (logs + d).slice(-16384);
  });
  let exited = null;
  child.once("exit", (code) => {
    exited = code ?? -1;
  });
  child.once("error", (e) => {
    exited = e.message;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (exited === null) {
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await done;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`docker-registry exited (${exited}): ${logs.trim()}`);
    }
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer GET /v2/ on ${url}: ${logs.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host: `127.0.0.1:${port}`, url, stop };
}

// ---- pushing a converted image ---------------------------------------------------------------

/**
 * Pushes layers converted by `seekable convert --json` (each report plus its `blob` path) as
 * an OCI image with the eStargz annotations; returns the reference HOST/NAME:TAG.
 */
export async function pushImage(host, name, tag, layers, config = {}) {
  const { RegistryClient, parseReference, pushBlob, putManifest } = await import(
    "@seekable/registry"
  );
  const sha256 = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const repo = { registry: host, repository: name };
  const client = new RegistryClient();
  try {
    for (const l of layers)
      await pushBlob(client, repo, { digest: l.digest, size: l.size }, createReadStream(l.blob));
    const configBytes = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        ...config,
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
      }),
    );
    const configDesc = { digest: sha256(configBytes), size: configBytes.length };
    await pushBlob(client, repo, configDesc, configBytes);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configDesc },
        layers: layers.map((l) => ({
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: l.digest,
          size: l.size,
          // Plain gzip layers (no TOC digest) get no eStargz annotations.
          ...(l.tocDigest && {
            annotations: {
              "containerd.io/snapshot/stargz/toc.digest": l.tocDigest,
              "io.containers.estargz.uncompressed-size": String(l.uncompressedSize),
            },
          }),
        })),
      }),
    );
    const ref = `${host}/${name}:${tag}`;
    await putManifest(
      client,
      parseReference(ref),
      manifest,
      "application/vnd.oci.image.manifest.v1+json",
    );
    return ref;
  } finally {
    await client.close();
  }
}

/**
 * Starts `seekable mount TARGET DIR --no-cache` with CLI `cli` and waits until DIR/PROBE is a
 * file (polled every `pollMs`, 30 s at most); `atReady(child)` runs then (e.g. to read its
 * CPU time); the mount is stopped with SIGTERM. Returns the ms from spawn to ready, what
 * `atReady` returned, the ms epoch of the spawn and the whole stderr (after exit).
 */
export async function timeMountReady(
  cli,
  target,
  dir,
  { env, probe = "etc/os-release", pollMs = 2, atReady } = {},
) {
  const spawnedAt = performance.timeOrigin + performance.now();
  const child = spawn(process.execPath, [cli, "mount", target, dir, "--no-cache"], {
    stdio: ["ignore", "ignore", "pipe"],
    env,
  });
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const since = () => performance.timeOrigin + performance.now() - spawnedAt;
  let ms;
  let extra;
  try {
    for (;;) {
      if (exited) throw new Error(`mount exited: ${err}`);
      try {
        if (statSync(join(dir, probe)).isFile()) {
          ms = since();
          extra = atReady?.(child);
          break;
        }
      } catch {}
      if (since() > 30_000) throw new Error(`mount not ready in 30 s: ${err}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    const done = new Promise((r) => (exited ? r() : child.once("exit", r)));
    child.kill("SIGTERM");
    await done;
  }
  return { ms, extra, spawnedAt, stderr: err };
}
