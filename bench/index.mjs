#!/usr/bin/env node
import { spawnSync } from "node:child_process";
// Gzip layer indexing (issue 17): how fast `seekable index` builds a layer's index (one
// streaming pass: inflate with checkpoints, tar parse, sha256 per 4 MiB file chunk) against
// `gzip -dc` and `pigz -dc` decompressing the same layer to /dev/null, and how large the
// serialized index is against the layer. Layers: the real-data corpus layer.tar.gz and the
// bench image's three layers, gzip -6 (as `docker build` pushes them; cached in
// .work/index-bench). Times are wall seconds, median of --repeat runs, the three methods
// interleaved round-robin; MB/s are of uncompressed output.
// Then the bench image, unconverted, is pushed to a loopback registry, indexed with
// `seekable index`, and the files `python3 -c "import json"` opens are read with
// `seekable cat --no-cache --stats` through the indexes and with `--index none` (whole
// layers): requests and bytes fetched.
//
// Usage: node bench/index.mjs [--repeat 3] [--span-size 4194304] [--image DIR] [--json]
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildGzipIndex, serializeGzipIndex } from "@seekable/format";
import {
  ensureCorpus,
  ensureSeekable,
  fmt,
  load,
  mdTable,
  median,
  parseArgs,
  pushImage,
  ROOT,
  SEEKABLE,
  startRegistry,
  WORK,
} from "./lib.mjs";

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
  layers.push({ name: `image layer ${n}`, path: gz, tar });
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

// ---- the unconverted image, read lazily through its indexes ----
const sha256File = (path) => {
  const h = createHash("sha256");
  h.update(readFileSync(path));
  return `sha256:${h.digest("hex")}`;
};
ensureSeekable();
const cli = (...args) => {
  const r = spawnSync(process.execPath, [SEEKABLE, ...args], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`seekable ${args.join(" ")}: ${r.stderr}`);
  return r;
};
const imageLayers = layers.filter((l) => l.tar);
let cold;
if (imageLayers.length === 3) {
  const registry = await startRegistry();
  try {
    const pushed = imageLayers.map((l) => ({
      blob: l.path,
      digest: sha256File(l.path),
      size: statSync(l.path).size,
      diffID: sha256File(l.tar),
    }));
    const ref = `docker://${await pushImage(registry.host, "bench/plain", "v1", pushed)}`;
    const t0 = process.hrtime.bigint();
    const indexed = JSON.parse(
      cli("index", ref, "--span-size", String(opts.spanSize), "--json").stdout,
    );
    const indexSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const workload = readFileSync(join(opts.image, "workload-python-json.txt"), "utf8")
      .split("\n")
      .filter((p) => p !== "");
    const read = (...extra) => {
      const r = cli("cat", ref, ...workload, "--no-cache", "--stats", ...extra);
      const stats = JSON.parse(r.stderr.toString().trim().split("\n").pop());
      return { ...stats, output: r.stdout.length };
    };
    const lazy = read();
    const whole = read("--index", "none");
    if (lazy.output !== whole.output) throw new Error("cat through the index differs in length");
    cold = {
      files: workload.length,
      imageBytes: pushed.reduce((s, l) => s + l.size, 0),
      indexSeconds,
      indexed: indexed.indexed.length,
      lazy,
      whole,
    };
  } finally {
    await registry.stop();
  }
}

if (opts.json) {
  console.log(
    JSON.stringify({ repeat: opts.repeat, spanSize: opts.spanSize, rows, sum, cold }, null, 2),
  );
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
  if (cold) {
    console.log(
      `\n\`seekable index\` of the unconverted image (${cold.indexed} layers, loopback registry): ${fmt(cold.indexSeconds, 2)} s\n`,
    );
    console.log(
      mdTable(
        ["cat of the import json files", "files", "requests", "MB fetched", "of the image"],
        [
          [
            "through the indexes",
            cold.files,
            cold.lazy.requests,
            fmt(cold.lazy.bytesFetched / 1e6, 2),
            `${fmt((100 * cold.lazy.bytesFetched) / cold.imageBytes, 1)}%`,
          ],
          [
            "--index none (whole layers)",
            cold.files,
            cold.whole.requests,
            fmt(cold.whole.bytesFetched / 1e6, 2),
            `${fmt((100 * cold.whole.bytesFetched) / cold.imageBytes, 1)}%`,
          ],
        ],
      ),
    );
  }
}
