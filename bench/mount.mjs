#!/usr/bin/env node
// FUSE mount benchmark (needs root, /dev/fuse, fusermount, docker-registry):
//
// 1. Cold start: the real three-layer image of tools/image/build-image.mjs (converted with
//    `seekable convert`, pushed to a docker-registry on loopback) is mounted with an empty
//    cache; `chroot MNT /usr/bin/python3 -c "import json"` runs from the mount. Reported: the
//    time from starting `seekable mount` to the program's exit, requests and bytes (--stats).
// 2. Full pull of the same image: download every layer blob, decompress and extract it
//    (node fetch -> tar -xz), then the same program from the extracted tree.
// 3. Throughput: a 200 MB file in its own image; read once through a mount (fills the chunk
//    cache), then read through a fresh mount (new process: no page cache) with a warm chunk
//    cache, in 1 MiB reads. Bar: >= 300 MB/s. A second read shows the page cache.
//
// Usage: node bench/mount.mjs [--json] [--keep] [--runs N]
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import tarStream from "tar-stream";
import {
  ensureSeekable,
  mdTable,
  median,
  parseArgs,
  pushImage,
  ROOT,
  SEEKABLE,
  startRegistry,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { json: false, keep: false, runs: 3 });
const IMAGE_DIR = join(WORK, "image");
const OUT = join(WORK, "mount-bench");
const BIG = 200 * 1000 * 1000;
const log = (s) => process.stderr.write(`mount-bench: ${s}\n`);
const now = () => Number(process.hrtime.bigint()) / 1e9;

function run(cmd, args, { input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    const out = [];
    let err = "";
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.stdin.end(input);
    child.on("close", (code) =>
      code === 0
        ? resolve({ stdout: Buffer.concat(out), stderr: err })
        : reject(new Error(`${cmd} ${args.slice(0, 4).join(" ")}… exited ${code}: ${err.trim()}`)),
    );
  });
}

async function convert(tar, blob, extra = []) {
  const r = await run(process.execPath, [SEEKABLE, "convert", tar, blob, "--json", ...extra]);
  return { ...JSON.parse(r.stdout), blob };
}

/** Starts `seekable mount`; resolves once it printed its "mounted" line. */
function mount(ref, dir, args) {
  mkdirSync(dir, { recursive: true });
  const t0 = now();
  const child = spawn(process.execPath, [SEEKABLE, "mount", `docker://${ref}`, dir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d) => {
    err += d;
  });
  const exited = new Promise((r) => child.once("exit", r));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`mount did not come up: ${err}`));
    }, 30_000);
    child.once("exit", (code) => reject(new Error(`mount exited ${code}: ${err}`)));
    child.stdout.once("data", () => {
      clearTimeout(timer);
      resolve({
        started: t0,
        mountedAt: now(),
        async stop() {
          child.kill("SIGTERM");
          const code = await exited;
          if (code !== 0) throw new Error(`mount exited ${code}: ${err}`);
          const line = err
            .trim()
            .split("\n")
            .reverse()
            .find((l) => l.startsWith("{"));
          return line ? JSON.parse(line) : undefined;
        },
        kill() {
          child.kill("SIGKILL");
          try {
            execFileSync("fusermount", ["-u", "-z", dir], { stdio: "ignore" });
          } catch {}
        },
      });
    });
  });
}

/** Reads a file in 1 MiB reads; returns MB/s. */
async function readThroughput(path) {
  const fh = await open(path, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  let total = 0;
  const t0 = now();
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
  } finally {
    await fh.close();
  }
  const s = now() - t0;
  return { bytes: total, seconds: s, mbps: total / 1e6 / s };
}

async function coldStart(ref, i) {
  const mnt = join(OUT, `mnt-cold-${i}`);
  const cache = join(OUT, `cache-cold-${i}`);
  rmSync(cache, { recursive: true, force: true });
  const m = await mount(ref, mnt, ["--cache-dir", cache, "--stats"]);
  try {
    const r = await run("chroot", [mnt, "/usr/bin/python3", "-c", "import json; print('ok')"]);
    const done = now();
    if (r.stdout.toString().trim() !== "ok") throw new Error(`python printed ${r.stdout}`);
    const stats = await m.stop();
    return {
      seconds: done - m.started,
      mountSeconds: m.mountedAt - m.started,
      runSeconds: done - m.mountedAt,
      requests: stats.requests,
      bytesFetched: stats.bytesFetched,
    };
  } catch (e) {
    m.kill();
    throw e;
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

async function fullPull(registryUrl, layers, name, i) {
  const root = join(OUT, `pull-${i}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const t0 = now();
  let bytes = 0;
  for (const l of layers) {
    const res = await fetch(`${registryUrl}/v2/${name}/blobs/${l.digest}`);
    if (!res.ok) throw new Error(`GET blob ${l.digest}: ${res.status}`);
    const tar = spawn("tar", ["-xzf", "-", "-C", root], { stdio: ["pipe", "ignore", "pipe"] });
    const done = new Promise((resolve, reject) =>
      tar.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`)))),
    );
    for await (const chunk of res.body) {
      bytes += chunk.length;
      if (!tar.stdin.write(chunk)) await new Promise((r) => tar.stdin.once("drain", r));
    }
    tar.stdin.end();
    await done;
  }
  const pulled = now();
  const r = await run("chroot", [root, "/usr/bin/python3", "-c", "import json; print('ok')"]);
  if (r.stdout.toString().trim() !== "ok") throw new Error(`python printed ${r.stdout}`);
  const done = now();
  rmSync(root, { recursive: true, force: true });
  return {
    seconds: done - t0,
    pullSeconds: pulled - t0,
    requests: layers.length,
    bytesFetched: bytes,
  };
}

async function bigFileTar(path) {
  const pack = tarStream.pack();
  const fh = await open(path, "w");
  const written = (async () => {
    for await (const chunk of pack) await fh.write(chunk);
  })();
  const entry = pack.entry({ name: "big.bin", size: BIG, mode: 0o644, mtime: new Date(0) });
  for (let left = BIG; left > 0; ) {
    const n = Math.min(left, 1 << 20);
    if (!entry.write(randomBytes(n))) await new Promise((r) => entry.once("drain", r));
    left -= n;
  }
  entry.end();
  pack.finalize();
  await written;
  await fh.close();
}

// ---- main -------------------------------------------------------------------------------

if (process.getuid?.() !== 0) throw new Error("needs root (FUSE mounts, chroot)");
ensureSeekable();
await run(process.execPath, [join(ROOT, "tools/image/build-image.mjs")]);
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

log("converting the image's layers");
const layers = [];
for (const n of [1, 2, 3])
  layers.push(await convert(join(IMAGE_DIR, `layer${n}.tar`), join(OUT, `layer${n}.estargz`)));
log("building and converting a 200 MB file layer");
await bigFileTar(join(OUT, "big.tar"));
const bigLayer = await convert(join(OUT, "big.tar"), join(OUT, "big.estargz"), ["--level", "1"]);
rmSync(join(OUT, "big.tar"), { force: true });

const registry = await startRegistry();
const result = {};
try {
  const ref = await pushImage(registry.host, "bench/python", "bench", layers);
  const bigRef = await pushImage(registry.host, "bench/big", "bench", [bigLayer]);

  const cold = [];
  const pulls = [];
  for (let i = 0; i < opts.runs; i++) {
    log(`cold start ${i + 1}/${opts.runs}`);
    cold.push(await coldStart(ref, i));
    log(`full pull ${i + 1}/${opts.runs}`);
    pulls.push(await fullPull(registry.url, layers, "bench/python", i));
  }

  log("throughput of a cached 200 MB file");
  const cache = join(OUT, "cache-big");
  const mnt = join(OUT, "mnt-big");
  const warm = await mount(bigRef, mnt, ["--cache-dir", cache]);
  let fill;
  try {
    fill = await readThroughput(join(mnt, "big.bin"));
  } finally {
    await warm.stop();
  }
  const reads = [];
  let pageCache;
  for (let i = 0; i < opts.runs; i++) {
    const m = await mount(bigRef, mnt, ["--cache-dir", cache]);
    try {
      reads.push(await readThroughput(join(mnt, "big.bin")));
      if (i === 0) pageCache = await readThroughput(join(mnt, "big.bin"));
    } finally {
      await m.stop();
    }
  }
  const med = (xs, k) => median(xs.map((x) => x[k]));
  Object.assign(result, {
    image: { layers: layers.length, compressedBytes: layers.reduce((a, l) => a + l.size, 0) },
    coldStart: {
      seconds: med(cold, "seconds"),
      mountSeconds: med(cold, "mountSeconds"),
      runSeconds: med(cold, "runSeconds"),
      requests: med(cold, "requests"),
      bytesFetched: med(cold, "bytesFetched"),
    },
    fullPull: {
      seconds: med(pulls, "seconds"),
      pullSeconds: med(pulls, "pullSeconds"),
      requests: pulls[0].requests,
      bytesFetched: pulls[0].bytesFetched,
    },
    throughput: {
      fileBytes: BIG,
      coldFillMBps: fill.mbps,
      cachedMBps: med(reads, "mbps"),
      pageCacheMBps: pageCache.mbps,
      bar300MBps: med(reads, "mbps") >= 300,
    },
  });
} finally {
  await registry.stop();
  if (!opts.keep) rmSync(OUT, { recursive: true, force: true });
}

const r = result;
if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
else {
  const mb = (b) => (b / 1e6).toFixed(1);
  process.stdout.write(
    `${mdTable(
      ["start python3 -c 'import json'", "seconds", "requests", "MB fetched"],
      [
        [
          "seekable mount (cold cache)",
          `${r.coldStart.seconds.toFixed(2)} (mount ${r.coldStart.mountSeconds.toFixed(2)} + run ${r.coldStart.runSeconds.toFixed(2)})`,
          r.coldStart.requests,
          mb(r.coldStart.bytesFetched),
        ],
        [
          "full pull (download, gunzip, extract) + run",
          `${r.fullPull.seconds.toFixed(2)} (pull ${r.fullPull.pullSeconds.toFixed(2)})`,
          r.fullPull.requests,
          mb(r.fullPull.bytesFetched),
        ],
      ],
    )}\n\n${mdTable(
      ["200 MB file through the mount", "MB/s"],
      [
        ["first read (fetch, verify, fill the cache)", r.throughput.coldFillMBps.toFixed(0)],
        ["fresh mount, chunk cache warm (bar >= 300)", r.throughput.cachedMBps.toFixed(0)],
        ["same mount again (page cache)", r.throughput.pageCacheMBps.toFixed(0)],
      ],
    )}\n`,
  );
}
