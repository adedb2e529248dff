#!/usr/bin/env node
// Memory benchmark: a layer with one 1 GiB file (alternating 1 MiB blocks of incompressible
// AES-CTR keystream and compressible pseudo-text) plus a few small files and a symlink,
// generated into .work/memory/, converted with seekable, then `seekable verify`. Reports peak
// RSS (bar: <= 256 MiB) and throughput. Files are deleted afterwards unless --keep.
//
// Usage: node bench/memory.mjs [--size-mib 1024] [--json] [--keep]
import { createCipheriv } from "node:crypto";
import { createWriteStream, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import {
  ensureSeekable,
  ensureTime,
  fmt,
  load,
  MiB,
  mdTable,
  parseArgs,
  runTimed,
  SEEKABLE,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { sizeMib: 1024, json: false, keep: false });
ensureTime();
ensureSeekable();

const dir = join(WORK, "memory");
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const layer = join(dir, "big.tar");
const blob = join(dir, "big.esgz");

// Deterministic data: AES-256-CTR keystream (incompressible) and a pseudo-text pool.
const key = Buffer.alloc(32, 7);
const iv = Buffer.alloc(16, 0);
const cipher = createCipheriv("aes-256-ctr", key, iv);
const zeros = Buffer.alloc(MiB);
const words =
  "the quick brown fox jumps over lazy dog layer chunk gzip member offset digest toc footer estargz seekable container image registry blob range request verify stream buffer worker thread deflate inflate window".split(
    " ",
  );
const poolSize = 4 * MiB;
const pool = Buffer.alloc(poolSize + MiB);
{
  let state = 0x12345678;
  let off = 0;
  while (off < pool.length) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const w = words[state % words.length];
    off += pool.write(state & 0x100 ? `${w}\n` : `${w} `, off);
  }
}
let textState = 42;
function textBlock() {
  textState = (Math.imul(textState, 1664525) + 1013904223) >>> 0;
  const start = textState % poolSize;
  return pool.subarray(start, start + MiB);
}

async function writeLayer() {
  const pack = tar.pack();
  const mtime = new Date("2024-01-01T00:00:00Z");
  const small = (name, body) =>
    new Promise((res, rej) =>
      pack.entry({ name, mtime, mode: 0o644, uid: 0, gid: 0 }, body, (e) => (e ? rej(e) : res())),
    );
  const done = pipeline(pack, createWriteStream(layer));
  pack.entry({ name: "data/", type: "directory", mtime, mode: 0o755 });
  await small("data/README", "one big file follows\n");
  await small("data/empty", "");
  const size = opts.sizeMib * MiB;
  const entry = pack.entry({ name: "data/big.bin", size, mtime, mode: 0o644, uid: 0, gid: 0 });
  for (let i = 0; i < opts.sizeMib; i++) {
    const block = i % 2 === 0 ? cipher.update(zeros) : textBlock();
    if (!entry.write(block)) await new Promise((r) => entry.once("drain", r));
  }
  await new Promise((res, rej) => entry.end((e) => (e ? rej(e) : res())));
  pack.entry({ name: "data/link", type: "symlink", linkname: "big.bin", mtime, mode: 0o777 });
  await small("etc/hostname", "seekable\n");
  pack.finalize();
  await done;
}

const t0 = performance.now();
await writeLayer();
const layerSize = statSync(layer).size;
process.stderr.write(
  `wrote ${layer} (${layerSize} B) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
);

const loadBefore = load();
let conv;
let ver;
try {
  conv = await runTimed(process.execPath, [SEEKABLE, "convert", layer, blob, "--json"]);
  conv.report = JSON.parse(conv.stdout);
  conv.size = statSync(blob).size;
  ver = await runTimed(process.execPath, [
    SEEKABLE,
    "verify",
    blob,
    "--toc-digest",
    conv.report.tocDigest,
    "--json",
  ]);
  ver.report = JSON.parse(ver.stdout);
} finally {
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
}
const loadAfter = load();

const MB = 1e6;
const rows = [
  [
    "seekable convert",
    fmt(conv.wall, 2),
    fmt(layerSize / MB / conv.wall, 1),
    fmt(conv.cpu, 1),
    fmt(conv.rssMiB, 0),
    conv.rssMiB <= 256 ? "PASS" : "FAIL",
  ],
  [
    "seekable verify",
    fmt(ver.wall, 2),
    fmt(layerSize / MB / ver.wall, 1),
    fmt(ver.cpu, 1),
    fmt(ver.rssMiB, 0),
    ver.rssMiB <= 256 ? "PASS" : "FAIL",
  ],
];
const text = [
  `Input: ${layerSize} B tar (one ${opts.sizeMib} MiB file, half keystream/half pseudo-text, + 4 small entries); ` +
    `output ${conv.size} B (${((conv.size / layerSize) * 100).toFixed(1)}%), ${conv.report.chunks} chunks; ` +
    `load avg before ${loadBefore}, after ${loadAfter}`,
  "",
  mdTable(
    ["step", "wall s", "MB/s (uncompressed)", "CPU s", "peak RSS MiB", "bar <= 256 MiB"],
    rows,
  ),
  "",
  `verify: ${ver.stdout.trim()}`,
].join("\n");
if (opts.json) {
  process.stdout.write(
    `${JSON.stringify({ layerSize, sizeMiB: opts.sizeMib, loadBefore, loadAfter, convert: { ...conv, stdout: undefined }, verify: { ...ver, stdout: undefined }, report: conv.report }, null, 2)}\n`,
  );
  process.stderr.write(`${text}\n`);
} else {
  process.stdout.write(`${text}\n`);
}
