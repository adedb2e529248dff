#!/usr/bin/env node
// Decompression benchmark for the reader side and the converter's input side.
// (a) single gzip members (node zlib gzipSync, level 6, of slices of the corpus tar) of
//     4 KiB, 64 KiB, 1 MiB and 4 MiB: zlib-sync (windowBits 31, chunkSize = size + 1 KiB as
//     the reader uses, one push with Z_SYNC_FLUSH; also without the reader's 64 KiB floor) vs zlib.gunzipSync (default and with
//     chunkSize >= size) vs zlib.inflateRawSync (the deflate body, same two variants).
// (b) streaming decompression of the whole corpus layer.tar.gz: zlib.createGunzip with
//     chunkSize 1 MiB (and the 16 KiB default) vs zlib-sync fed 1 MiB pushes, plus
//     `gzip -dc` and `pigz -dc` as external baselines.
// Figures are MB/s of uncompressed output, median of --repeat trials (3 at most for (b)),
// methods interleaved round-robin.
//
// Usage: node bench/inflate.mjs [--repeat 5] [--json]
import { spawnSync } from "node:child_process";
import { closeSync, createReadStream, openSync, readFileSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { createGunzip, gunzipSync, gzipSync, inflateRawSync } from "node:zlib";
import { ensureCorpus, fmt, load, MiB, mdTable, median, parseArgs } from "./lib.mjs";

const require = createRequire(import.meta.url);
const ZlibSync = require("zlib-sync");

const opts = parseArgs(process.argv.slice(2), { repeat: 5, json: false });
const corpus = ensureCorpus();
const MB = 1e6;
const loadBefore = load();

// ---- (a) single members ----
const tarBytes = readFileSync(corpus.tar);
const sizes = [4 * 1024, 64 * 1024, MiB, 4 * MiB];
const perSize = 32 * MiB; // raw bytes per size class, spread evenly over the tar

function makeMembers(size) {
  const n = Math.max(1, Math.floor(perSize / size));
  const step = Math.floor((tarBytes.length - size) / n);
  const members = [];
  for (let i = 0; i < n; i++) {
    const raw = tarBytes.subarray(i * step, i * step + size);
    members.push({ raw, gz: gzipSync(raw, { level: 6 }) });
  }
  // gzipSync writes a 10-byte header (no FNAME) and an 8-byte trailer.
  for (const m of members) m.deflate = m.gz.subarray(10, m.gz.length - 8);
  return members;
}

const methods = {
  "zlib-sync": (m, size) => {
    const inf = new ZlibSync.Inflate({
      windowBits: 31,
      chunkSize: Math.min(Math.max(size + 1024, 64 * 1024), 64 << 20),
    });
    inf.push(m.gz, ZlibSync.Z_SYNC_FLUSH);
    if (inf.err < 0) throw new Error(`zlib-sync: ${inf.msg}`);
    return inf.result;
  },
  "zlib-sync no 64K floor": (m, size) => {
    const inf = new ZlibSync.Inflate({ windowBits: 31, chunkSize: size + 1024 });
    inf.push(m.gz, ZlibSync.Z_SYNC_FLUSH);
    if (inf.err < 0) throw new Error(`zlib-sync: ${inf.msg}`);
    return inf.result;
  },
  gunzipSync: (m) => gunzipSync(m.gz),
  "gunzipSync chunkSize": (m, size) => gunzipSync(m.gz, { chunkSize: Math.max(size, 64 * 1024) }),
  inflateRawSync: (m) => inflateRawSync(m.deflate),
  "inflateRawSync chunkSize": (m, size) =>
    inflateRawSync(m.deflate, { chunkSize: Math.max(size, 64 * 1024) }),
};

const memberResults = {};
for (const size of sizes) {
  const members = makeMembers(size);
  const raw = members.reduce((a, m) => a + m.raw.length, 0);
  const gz = members.reduce((a, m) => a + m.gz.length, 0);
  memberResults[size] = { members: members.length, ratio: raw / gz, mbps: {} };
  for (const [name, fn] of Object.entries(methods)) {
    // Correctness first: every method must return exactly the member's bytes.
    for (const m of members) {
      const out = fn(m, size);
      if (!Buffer.from(out).equals(m.raw)) {
        throw new Error(`${name}: wrong output for a ${size}-byte member (${out.length} bytes)`);
      }
    }
  }
  // Trials run round-robin over the methods so that load from other processes hits all alike.
  const trials = Object.fromEntries(Object.keys(methods).map((n) => [n, []]));
  for (let t = 0; t < opts.repeat; t++) {
    for (const [name, fn] of Object.entries(methods)) {
      let bytes = 0;
      const t0 = performance.now();
      let elapsed = 0;
      do {
        for (const m of members) bytes += fn(m, size).length;
        elapsed = (performance.now() - t0) / 1000;
      } while (elapsed < 0.3);
      trials[name].push(bytes / MB / elapsed);
    }
  }
  for (const name of Object.keys(methods)) memberResults[size].mbps[name] = median(trials[name]);
  process.stderr.write(`members of ${size} B: done\n`);
}

// ---- (b) whole-layer streams ----
async function nodeStream(chunkSize) {
  const t0 = performance.now();
  let bytes = 0;
  const gunzip = createGunzip(chunkSize ? { chunkSize } : {});
  const input = createReadStream(corpus.tgz, { highWaterMark: MiB });
  input.pipe(gunzip);
  for await (const chunk of gunzip) bytes += chunk.length;
  return { bytes, secs: (performance.now() - t0) / 1000 };
}

function zlibSyncStream() {
  const t0 = performance.now();
  const inf = new ZlibSync.Inflate({ windowBits: 31, chunkSize: MiB });
  const fd = openSync(corpus.tgz, "r");
  const buf = Buffer.allocUnsafe(MiB);
  let bytes = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, MiB, null);
      if (n === 0) break;
      inf.push(n === MiB ? buf : buf.subarray(0, n), ZlibSync.Z_SYNC_FLUSH);
      if (inf.err < 0) throw new Error(`zlib-sync: ${inf.msg}`);
      bytes += inf.result.length;
    }
    // Flush output still pending when the last push filled the buffer exactly.
    inf.push(Buffer.alloc(0), ZlibSync.Z_SYNC_FLUSH);
    if (inf.err >= 0 && inf.result) bytes += inf.result.length;
  } finally {
    closeSync(fd);
  }
  return { bytes, secs: (performance.now() - t0) / 1000 };
}

function external(cmd) {
  const t0 = performance.now();
  const r = spawnSync("sh", ["-c", `${cmd} < "$1" | wc -c`, "sh", corpus.tgz], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return { bytes: Number(r.stdout.trim()), secs: (performance.now() - t0) / 1000 };
}

const streams = {
  "node createGunzip chunkSize 1 MiB": () => nodeStream(MiB),
  "node createGunzip default (16 KiB)": () => nodeStream(0),
  "zlib-sync 1 MiB pushes": async () => zlibSyncStream(),
  "gzip -dc": async () => external("gzip -dc"),
  "pigz -dc": async () => external("pigz -dc"),
};
const streamResults = {};
const streamTrials = Object.fromEntries(Object.keys(streams).map((n) => [n, []]));
for (let t = 0; t < Math.min(opts.repeat, 3); t++) {
  for (const [name, fn] of Object.entries(streams)) {
    const r = await fn();
    if (r.bytes !== corpus.tarSize) {
      throw new Error(`${name}: decompressed ${r.bytes} bytes, expected ${corpus.tarSize}`);
    }
    streamTrials[name].push(r.bytes / MB / r.secs);
  }
}
for (const name of Object.keys(streams)) streamResults[name] = median(streamTrials[name]);
const loadAfter = load();

const names = Object.keys(methods);
const text = [
  `Corpus ${corpus.tgz}; MB/s of uncompressed output, median of ${opts.repeat}; ` +
    `node ${process.versions.node} zlib ${process.versions.zlib}, zlib-sync zlib ${ZlibSync.ZLIB_VERSION}; ` +
    `load avg before ${loadBefore}, after ${loadAfter}`,
  "",
  "(a) single gzip members",
  "",
  mdTable(
    ["member", "count", "ratio", ...names],
    sizes.map((s) => {
      const r = memberResults[s];
      const label = s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`;
      return [label, String(r.members), fmt(r.ratio, 2), ...names.map((n) => fmt(r.mbps[n], 0))];
    }),
  ),
  "",
  `(b) whole layer.tar.gz stream (${corpus.tarSize} B uncompressed)`,
  "",
  mdTable(
    ["decoder", "MB/s"],
    Object.entries(streamResults).map(([n, v]) => [n, fmt(v, 0)]),
  ),
].join("\n");

if (opts.json) {
  process.stdout.write(
    `${JSON.stringify({ loadBefore, loadAfter, members: memberResults, streams: streamResults }, null, 2)}\n`,
  );
  process.stderr.write(`${text}\n`);
} else {
  process.stdout.write(`${text}\n`);
}
