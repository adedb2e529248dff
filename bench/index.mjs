#!/usr/bin/env node
// Gzip layer indexing (issue 17): how fast `seekable index` builds a layer's index (one
// streaming pass: inflate with checkpoints, tar parse, sha256 per 4 MiB file chunk) against
// `gzip -dc` and `pigz -dc` decompressing the same layer to /dev/null, and how large the
// serialized index is against the layer. Layers: the real-data corpus layer.tar.gz and the
// bench image's three layers, gzip -6 (as `docker build` pushes them; cached in
// .work/index-bench). Times are wall seconds, median of --repeat runs, the three methods
// interleaved round-robin; MB/s are of uncompressed output.
//
// Usage: node bench/index.mjs [--repeat 3] [--span-size 4194304] [--image DIR] [--json]
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildGzipIndex, serializeGzipIndex } from "@seekable/format";
import { ensureCorpus, fmt, load, mdTable, median, parseArgs, ROOT, WORK } from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), {
  repeat: 3,
  spanSize: 4 << 20,
  image: join(WORK, "image"),
  json: false,
});
const log = (s) => process.stderr.write(`index-bench: ${s}\n`);
const loadBefore = load();

const layers = [{ name: "corpus", path: ensureCorpus().tgz }];
if (!existsSync(join(opts.image, "layer3.tar"))) {
  log("building the bench image (tools/image/build-image.mjs, cached)");
  spawnSync(process.execPath, [join(ROOT, "tools/image/build-image.mjs")], { stdio: "inherit" });
}
const dir = join(WORK, "index-bench");
mkdirSync(dir, { recursive: true });
for (const n of [1, 2, 3]) {
  const tar = join(opts.image, `layer${n}.tar`);
  const gz = join(dir, `layer${n}.tar.gz`);
  if (!existsSync(tar)) continue;
  if (!existsSync(gz) || statSync(gz).mtimeMs < statSync(tar).mtimeMs) {
    log(`gzip -6 ${tar}`);
    const r = spawnSync("sh", [
      "-c",
      `gzip -6 -n -c "${tar}" > "${gz}.tmp" && mv "${gz}.tmp" "${gz}"`,
    ]);
    if (r.status !== 0) throw new Error(`gzip failed: ${r.stderr}`);
  }
  layers.push({ name: `image layer ${n}`, path: gz });
}

function external(cmd, path) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, ["-dc", path], { stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`${cmd} -dc ${path}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function index(path) {
  const t0 = process.hrtime.bigint();
  const ix = await buildGzipIndex(createReadStream(path, { highWaterMark: 1 << 20 }), {
    spanSize: opts.spanSize,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wall, ix };
}

const rows = [];
for (const l of layers) {
  const times = { index: [], gzip: [], pigz: [] };
  let ix;
  for (let i = 0; i < opts.repeat; i++) {
    const r = await index(l.path);
    times.index.push(r.wall);
    ix = r.ix;
    times.gzip.push(external("gzip", l.path));
    times.pigz.push(external("pigz", l.path));
  }
  const blob = serializeGzipIndex(ix);
  const size = statSync(l.path).size;
  const mb = ix.uncompressedSize / 1e6;
  const m = { index: median(times.index), gzip: median(times.gzip), pigz: median(times.pigz) };
  rows.push({
    layer: l.name,
    compressedBytes: size,
    uncompressedBytes: ix.uncompressedSize,
    checkpoints: ix.checkpoints.length,
    indexBytes: blob.length,
    indexPercent: (100 * blob.length) / size,
    seconds: m,
    mbPerSecond: { index: mb / m.index, gzip: mb / m.gzip, pigz: mb / m.pigz },
    vsGzip: m.gzip / m.index,
    vsPigz: m.pigz / m.index,
  });
}
const total = (f) => rows.reduce((s, r) => s + f(r), 0);
const sum = {
  compressed: total((r) => r.compressedBytes),
  index: total((r) => r.indexBytes),
  tIndex: total((r) => r.seconds.index),
  tGzip: total((r) => r.seconds.gzip),
  tPigz: total((r) => r.seconds.pigz),
};

if (opts.json) {
  console.log(JSON.stringify({ repeat: opts.repeat, spanSize: opts.spanSize, rows, sum }, null, 2));
} else {
  console.log(
    mdTable(
      [
        "layer",
        "gz MB",
        "tar MB",
        "checkpoints",
        "index KB",
        "index %",
        "index s",
        "gzip -dc s",
        "pigz -dc s",
        "index MB/s",
        "gzip MB/s",
        "index/gzip speed",
        "index/pigz speed",
      ],
      [
        ...rows.map((r) => [
          r.layer,
          fmt(r.compressedBytes / 1e6),
          fmt(r.uncompressedBytes / 1e6),
          r.checkpoints,
          fmt(r.indexBytes / 1e3),
          fmt(r.indexPercent, 2),
          fmt(r.seconds.index, 3),
          fmt(r.seconds.gzip, 3),
          fmt(r.seconds.pigz, 3),
          fmt(r.mbPerSecond.index, 0),
          fmt(r.mbPerSecond.gzip, 0),
          fmt(r.vsGzip, 2),
          fmt(r.vsPigz, 2),
        ]),
        [
          "all",
          fmt(sum.compressed / 1e6),
          "",
          "",
          fmt(sum.index / 1e3),
          fmt((100 * sum.index) / sum.compressed, 2),
          fmt(sum.tIndex, 3),
          fmt(sum.tGzip, 3),
          fmt(sum.tPigz, 3),
          "",
          "",
          fmt(sum.tGzip / sum.tIndex, 2),
          fmt(sum.tPigz / sum.tIndex, 2),
        ],
      ],
    ),
  );
  console.log(
    `\nmedian of ${opts.repeat}, span ${opts.spanSize} bytes; load before ${loadBefore}, after ${load()}`,
  );
}
