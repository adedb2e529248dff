#!/usr/bin/env node
// Requests and bytes of a cold start through `seekable mount`, against the lower bound.
//
// The real three-layer image of tools/image/build-image.mjs (converted once with `seekable
// convert`, kept in .work/mount-requests/) is pushed to a docker-registry on loopback, mounted
// with no cache, and `chroot MNT /usr/bin/python3 -c "import json"` runs from the mount
// (`--run` for another command). Reported: requests, bytes fetched, seconds, the files opened
// (--record) and the lower bound: every layer's footer + TOC plus the gzip members of the
// chunks of the files opened (each member once). `--delay MS` adds that much to every blob
// request (a slow registry), through a small forwarding proxy.
//
// Usage: node bench/mount-requests.mjs [--json] [--runs N] [--delay MS] [--run "CMD ..."]
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import {
  ensureSeekable,
  median,
  parseArgs,
  pushImage,
  ROOT,
  SEEKABLE,
  startRegistry,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), {
  json: false,
  runs: 1,
  delay: 0,
  run: "/usr/bin/python3 -c import_json",
});
const OUT = join(WORK, "mount-requests");
const log = (s) => process.stderr.write(`mount-requests: ${s}\n`);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const command = opts.run.split(" ").map((a) => a.replace("import_json", "import json"));

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    let err = "";
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve({ stdout: Buffer.concat(out), stderr: err })
        : reject(new Error(`${cmd} ${args.slice(0, 4).join(" ")}… exited ${code}: ${err.trim()}`)),
    );
  });
}

async function layersOf() {
  const { FileRangeSource, LayerReader } = await import("@seekable/format");
  mkdirSync(OUT, { recursive: true });
  const out = [];
  for (const n of [1, 2, 3]) {
    const blob = join(OUT, `layer${n}.estargz`);
    if (!existsSync(blob)) {
      log(`converting layer ${n}`);
      await run(process.execPath, [
        SEEKABLE,
        "convert",
        join(WORK, "image", `layer${n}.tar`),
        blob,
      ]);
    }
    const bytes = readFileSync(blob);
    const src = await FileRangeSource.open(blob);
    const reader = await LayerReader.open(src);
    out.push({
      blob,
      reader,
      src,
      digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
      size: statSync(blob).size,
      diffID: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
      tocDigest: reader.tocDigest,
      uncompressedSize: 0,
    });
  }
  return out;
}

/** Footer + TOC of every layer, plus the members of the files opened (topmost layer wins). */
function lowerBound(layers, paths) {
  let bytes = 0;
  for (const l of layers) bytes += l.size - l.reader.footer.tocOffset;
  const seen = layers.map(() => new Set());
  for (const p of paths) {
    for (let i = layers.length - 1; i >= 0; i--) {
      const n = layers[i].reader.lookup(p);
      if (!n) continue;
      for (const c of layers[i].reader.resolve(n).chunks) {
        if (seen[i].has(c.offset)) continue;
        seen[i].add(c.offset);
        bytes += c.nextOffset - c.offset;
      }
      break;
    }
  }
  return bytes;
}

/** Forwards to the registry, holding each blob request `ms` before it goes on. */
function delayProxy(target, ms) {
  const up = new URL(target);
  const server = createServer((req, res) => {
    const go = () => {
      const r = request(
        {
          host: up.hostname,
          port: up.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (u) => {
          res.writeHead(u.statusCode ?? 502, u.rawHeaders);
          u.pipe(res);
        },
      );
      r.on("error", () => res.destroy());
      req.pipe(r);
    };
    if (ms > 0 && req.url?.includes("/blobs/")) setTimeout(go, ms);
    else go();
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        host: `127.0.0.1:${server.address().port}`,
        close: () => new Promise((r) => server.close(r)),
      }),
    ),
  );
}

async function coldStart(ref, i) {
  const mnt = join(OUT, `mnt-${i}`);
  const record = join(OUT, `record-${i}.txt`);
  mkdirSync(mnt, { recursive: true });
  const t0 = now();
  const child = spawn(
    process.execPath,
    [SEEKABLE, "mount", `docker://${ref}`, mnt, "--no-cache", "--stats", "--record", record],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d) => {
    err += d;
  });
  const exited = new Promise((r) => child.once("exit", r));
  await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`mount exited ${code}: ${err}`)));
    child.stdout.once("data", resolve);
  });
  const mounted = now();
  try {
    await run("chroot", [mnt, ...command]);
  } finally {
    child.kill("SIGTERM");
  }
  const done = now();
  const code = await exited;
  if (code !== 0) throw new Error(`mount exited ${code}: ${err}`);
  const line = err
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  const stats = JSON.parse(line);
  const files = readFileSync(record, "utf8").trim().split("\n").filter(Boolean);
  return {
    seconds: done - t0,
    runSeconds: done - mounted,
    requests: stats.requests,
    bytesFetched: stats.bytesFetched,
    files,
  };
}

if (process.getuid?.() !== 0) throw new Error("needs root (FUSE mounts, chroot)");
ensureSeekable();
const layers = await layersOf();
const registry = await startRegistry();
const proxy = await delayProxy(registry.url, opts.delay);
let result;
try {
  const ref = await pushImage(registry.host, "bench/python", "bench", layers);
  const runs = [];
  for (let i = 0; i < opts.runs; i++)
    runs.push(await coldStart(ref.replace(registry.host, proxy.host), i));
  const bound = lowerBound(layers, runs[0].files);
  const bytes = median(runs.map((r) => r.bytesFetched));
  result = {
    command: command.join(" "),
    delayMs: opts.delay,
    filesOpened: runs[0].files.length,
    requests: median(runs.map((r) => r.requests)),
    bytesFetched: bytes,
    lowerBoundBytes: bound,
    ratio: Number((bytes / bound).toFixed(3)),
    seconds: Number(median(runs.map((r) => r.seconds)).toFixed(3)),
    runSeconds: Number(median(runs.map((r) => r.runSeconds)).toFixed(3)),
  };
} finally {
  await proxy.close();
  await registry.stop();
  for (const l of layers) await l.src.close();
  for (let i = 0; i < opts.runs; i++)
    rmSync(join(OUT, `mnt-${i}`), { recursive: true, force: true });
}
if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else
  process.stdout.write(
    `${result.command}: ${result.filesOpened} files opened, ${result.requests} requests, ` +
      `${result.bytesFetched} bytes (lower bound ${result.lowerBoundBytes}, ${result.ratio}x), ` +
      `${result.seconds} s (run ${result.runSeconds} s), delay ${result.delayMs} ms\n`,
  );
