#!/usr/bin/env node
// Chunk reading through the real LayerReader (fetch from memory, inflate, sha256 check), no
// cache: every regular file of the corpus converted to eStargz, read whole, by file-size
// class. Also the event loop's longest stall while reading (perf_hooks), which is what other
// FUSE requests wait for. MB/s of file bytes, median of --repeat trials.
//
// Usage: node bench/chunk-read.mjs [--repeat 5] [--blob FILE] [--json]
// --blob: an eStargz blob to read (default: the corpus converted once with this checkout's CLI
// into .work/bench/chunk-read.estargz); pass the same blob to compare two checkouts.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BufferRangeSource, LayerReader } from "@seekable/format";
import {
  ensureCorpus,
  fmt,
  load,
  MiB,
  mdTable,
  median,
  parseArgs,
  SEEKABLE,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { repeat: 5, blob: "", json: false });
let blobPath = opts.blob;
if (!blobPath) {
  blobPath = join(WORK, "bench", "chunk-read.estargz");
  if (!existsSync(blobPath)) {
    const corpus = ensureCorpus();
    mkdirSync(join(WORK, "bench"), { recursive: true });
    execFileSync(process.execPath, [SEEKABLE, "convert", corpus.tar, blobPath]);
  }
}
const loadBefore = load();
// Reads answer on a later turn of the event loop, as file and network reads do, so a stall
// is what one chunk's processing holds the loop for, not a whole run of in-memory reads.
const memory = new BufferRangeSource(readFileSync(blobPath));
const source = {
  size: memory.size,
  read: (ranges) => new Promise((r) => setImmediate(() => r(memory.read(ranges)))),
};
const reader = await LayerReader.open(source);
const classes = [
  { name: "< 64 KiB", test: (s) => s < 64 * 1024 },
  { name: "64 KiB - 1 MiB", test: (s) => s >= 64 * 1024 && s < MiB },
  { name: ">= 1 MiB", test: (s) => s >= MiB },
];
const files = [...reader.walk()].filter((n) => n.type === "reg" && !n.target && n.size > 0);
const results = {};
for (const c of classes) {
  const list = files.filter((n) => c.test(n.size));
  const bytes = list.reduce((a, n) => a + n.size, 0);
  const trials = [];
  const stalls = [];
  // MB per CPU second (all threads): less sensitive than wall time to other load.
  const cpus = [];
  for (let t = 0; t < opts.repeat; t++) {
    // A 1 ms ticker: the longest gap between its ticks is the longest time the loop was held.
    let last = performance.now();
    let maxGap = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 1);
    await new Promise((r) => setTimeout(r, 5));
    last = performance.now();
    maxGap = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (const n of list) await reader.read(n.path);
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    cpus.push(bytes / 1e6 / ((cpu.user + cpu.system) / 1e6));
    await new Promise((r) => setTimeout(r, 5));
    clearInterval(tick);
    trials.push(bytes / 1e6 / secs);
    stalls.push(maxGap);
  }
  results[c.name] = {
    files: list.length,
    bytes,
    mbps: median(trials),
    mbPerCpuSec: median(cpus),
    maxStallMs: median(stalls),
  };
}
const loadAfter = load();
const text = [
  `${blobPath}; LayerReader.read of every regular file, no cache; MB/s median of ${opts.repeat}; ` +
    `node ${process.versions.node}; load avg before ${loadBefore}, after ${loadAfter}`,
  "",
  mdTable(
    ["file size", "files", "MB", "MB/s", "MB per CPU s", "longest event-loop stall (ms)"],
    Object.entries(results).map(([k, r]) => [
      k,
      String(r.files),
      fmt(r.bytes / 1e6, 1),
      fmt(r.mbps, 0),
      fmt(r.mbPerCpuSec, 0),
      fmt(r.maxStallMs, 1),
    ]),
  ),
].join("\n");
if (opts.json) process.stdout.write(`${JSON.stringify({ loadBefore, loadAfter, results })}\n`);
process.stdout.write(`${text}\n`);
