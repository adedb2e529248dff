#!/usr/bin/env node
// Cold-start bytes: what does lazily starting `python3 -c "import json"` from a real
// three-layer image cost over the network, against what it must cost?
//
// 1. tools/image/build-image.mjs (cached) builds .work/image/layer{1,2,3}.tar and the workload
//    .work/image/workload-python-json.txt (files opened by the program, in access order).
// 2. Each layer is converted with `seekable convert` (default options); the image (OCI
//    manifest with the containerd.io/snapshot/stargz/toc.digest annotations, a minimal config
//    with rootfs.diff_ids) is pushed to a real `docker-registry` on loopback.
// 3. Open cost: `seekable ls docker://… --layer N --stats --no-cache` per layer, minus the
//    manifest request(s) (bar: at most 2 requests to open a layer).
// 4. Cold read: one `seekable cat docker://… PATH… --stats --no-cache` with every workload
//    path; each file's bytes are checked against the source layers (sha256).
// 5. Lower bound, per layer touched: the footer + the compressed TOC member
//    (tocOffset..end of blob) + each gzip member holding a chunk of a read file
//    (offset..nextOffset, counted once). Bar: bytes fetched <= 1.1 x lower bound.
//    A library run (openImage + ImageFS.read) splits the fetched bytes per layer and phase.
//
// Usage: node bench/coldstart-bytes.mjs [--json] [--keep]
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { MemoryChunkCache, openImage, ReadStats } from "@seekable/reader";
import { getImageManifest, parseReference, RegistryClient } from "@seekable/registry";
import {
  ensureSeekable,
  fmt,
  mdTable,
  parseArgs,
  pushImage,
  ROOT,
  runTimed,
  SEEKABLE,
  startRegistry,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { json: false, keep: false });
const IMAGE_DIR = join(WORK, "image");
const OUT = join(WORK, "coldstart");
const log = (s) => process.stderr.write(`coldstart-bytes: ${s}\n`);
const sha256 = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Runs a command; resolves {stdout (Buffer), stderr} or rejects with its stderr. */
function run(cmd, args, { env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: env ?? process.env });
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
        : reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")}… exited ${code}: ${err.trim()}`)),
    );
  });
}

/** The last JSON line a `--stats` run printed on stderr. */
function statsLine(stderr) {
  const line = stderr
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no --stats line in: ${stderr}`);
  return JSON.parse(line);
}

// ---- registry ------------------------------------------------------------------------------

// ---- expected contents ----------------------------------------------------------------------

/** sha256 and size of each workload file in the merged source layers (extracted in order). */
async function expectedFiles(tars, paths) {
  const root = join(OUT, "rootfs");
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  try {
    for (const t of tars) await run("tar", ["-xf", t, "-C", root]);
    return paths.map((p) => {
      const b = readFileSync(join(root, p));
      return { path: p, size: b.length, digest: sha256(b) };
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Opens the image with the library and reads every workload path, checking contents.
 * Returns totals, per-layer open/read figures (from each layer's RegistryBlobSource) and
 * the per-layer lower bound (footer + TOC member + the gzip members of the files' chunks).
 */
async function libraryRun(ref, paths, expected, nLayers, batch) {
  const client = new RegistryClient();
  const mismatches = [];
  const perLayer = Array.from({ length: nLayers }, (_, i) => ({
    layer: i,
    files: 0,
    fileBytes: 0,
    tocMember: 0,
    members: 0,
    bound: 0,
    openRequests: 0,
    openBytes: 0,
    readRequests: 0,
    readBytes: 0,
  }));
  try {
    const stats = new ReadStats();
    const cache = batch ? new MemoryChunkCache() : undefined;
    const target = await openImage(
      { reference: parseReference(ref) },
      { client: () => client, stats, cache },
    );
    const byView = new Map(target.layers.map((l, i) => [l.view, { l, i }]));
    for (const { l, i } of byView.values()) {
      perLayer[i].openRequests = l.reader.source.stats.requests;
      perLayer[i].openBytes = l.reader.source.stats.bytesFetched;
    }
    const touched = new Map(); // layer index -> Map(member offset -> compressed length)
    for (const p of paths) {
      const m = target.fs.lookup(p);
      const { l, i } = byView.get(m.layer);
      const node = l.reader.resolve(l.reader.lookup(m.node.path));
      const members = touched.get(i) ?? new Map();
      touched.set(i, members);
      for (const c of node.chunks) members.set(c.offset, c.nextOffset - c.offset);
      perLayer[i].files++;
      perLayer[i].fileBytes += node.size;
    }
    if (batch) await target.fs.prefetch?.(paths);
    for (const [k, p] of paths.entries()) {
      const data = await target.fs.read(p);
      if (sha256(data) !== expected[k].digest) mismatches.push(`${p} (library read)`);
    }
    for (const { l, i } of byView.values()) {
      const s = l.reader.source.stats;
      const pl = perLayer[i];
      pl.readRequests = s.requests - pl.openRequests;
      pl.readBytes = s.bytesFetched - pl.openBytes;
      const members = touched.get(i);
      if (!members) continue;
      pl.tocMember = l.reader.source.size - l.reader.footer.tocOffset; // TOC member + footer
      pl.members = [...members.values()].reduce((a, b) => a + b, 0);
      pl.bound = pl.tocMember + pl.members;
    }
    await target.close();
  } finally {
    await client.close();
  }
  return {
    requests: client.stats.requests,
    bytesFetched: client.stats.bytesFetched,
    perLayer,
    mismatches,
  };
}

// ---- main -------------------------------------------------------------------------------

ensureSeekable();
await run(process.execPath, [join(ROOT, "tools/image/build-image.mjs")]);
const tars = [1, 2, 3].map((n) => join(IMAGE_DIR, `layer${n}.tar`));
const workload = readFileSync(join(IMAGE_DIR, "workload-python-json.txt"), "utf8")
  .split("\n")
  .filter(Boolean);
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

log("converting the layers (seekable convert, default options)");
const layers = [];
for (const [i, tar] of tars.entries()) {
  const blob = join(OUT, `layer${i + 1}.estargz`);
  const r = await runTimed(process.execPath, [SEEKABLE, "convert", tar, blob, "--json"]);
  const c = JSON.parse(r.stdout);
  if (c.size !== statSync(blob).size) throw new Error(`${blob}: size differs from the report`);
  layers.push({ ...c, blob, tar, tarSize: statSync(tar).size, convertSeconds: r.wall });
}
const expected = await expectedFiles(tars, workload);

const registry = await startRegistry();
const result = {};
try {
  log(`pushing to ${registry.host}/bench/python:json`);
  const ref = await pushImage(registry.host, "bench/python", "json", layers, {
    config: { Cmd: ["/usr/bin/python3", "-c", "import json"] },
  });

  // What fetching the manifest alone costs (subtracted from the per-layer open figures).
  const mClient = new RegistryClient();
  await getImageManifest(mClient, parseReference(ref));
  const manifestRequests = mClient.stats.requests;
  const manifestBytes = mClient.stats.bytesFetched;
  await mClient.close();

  log("measuring layer opens (seekable ls --layer N)");
  const opens = [];
  for (let i = 0; i < layers.length; i++) {
    const r = await run(process.execPath, [
      SEEKABLE,
      "ls",
      `docker://${ref}`,
      "--layer",
      String(i),
      "--stats",
      "--no-cache",
      "--json",
    ]);
    const s = statsLine(r.stderr);
    opens.push({
      layer: i,
      requests: s.requests - manifestRequests,
      bytesFetched: s.bytesFetched - manifestBytes,
    });
  }

  log(`cold read of ${workload.length} files (seekable cat --no-cache)`);
  const t0 = process.hrtime.bigint();
  const cat = await run(process.execPath, [
    SEEKABLE,
    "cat",
    `docker://${ref}`,
    ...workload,
    "--stats",
    "--no-cache",
  ]);
  const catSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const catStats = statsLine(cat.stderr);
  let pos = 0;
  const mismatches = [];
  for (const e of expected) {
    const got = cat.stdout.subarray(pos, pos + e.size);
    pos += e.size;
    if (got.length !== e.size || sha256(got) !== e.digest) mismatches.push(e.path);
  }
  if (pos !== cat.stdout.length) mismatches.push(`(${cat.stdout.length - pos} trailing bytes)`);

  // Library runs: "batched" does what `cat` does (prefetch all paths, one batched read per
  // layer, into an in-memory cache) and splits it per layer and phase; "on demand" reads the
  // files one by one in access order with no cache, as a lazily mounted program would.
  const batched = await libraryRun(ref, workload, expected, layers.length, true);
  const onDemand = await libraryRun(ref, workload, expected, layers.length, false);
  mismatches.push(...batched.mismatches, ...onDemand.mismatches);
  const perLayer = batched.perLayer;
  const lowerBound = perLayer.reduce((a, l) => a + l.bound, 0);

  const fullPull = layers.reduce((a, l) => a + l.size, 0);
  const fetched = catStats.bytesFetched;
  const maxOpen = Math.max(...opens.map((o) => o.requests));
  // Where the bytes above the bound come from (per-layer figures of the batched library run).
  const used = perLayer.filter((l) => l.bound > 0);
  const excess = {
    manifest: manifestBytes,
    tailBeyondToc: used.reduce((a, l) => a + l.openBytes - l.tocMember, 0),
    coalescingGaps: used.reduce((a, l) => a + l.readBytes - l.members, 0),
    untouchedLayers: perLayer.reduce(
      (a, l) => a + (l.bound > 0 ? 0 : l.openBytes + l.readBytes),
      0,
    ),
  };
  Object.assign(result, {
    image: ref,
    workload: { files: workload.length, bytes: expected.reduce((a, e) => a + e.size, 0) },
    layers: layers.map((l, i) => ({
      digest: l.digest,
      size: l.size,
      tarSize: l.tarSize,
      uncompressedSize: l.uncompressedSize,
      entries: l.entries,
      tocDigest: l.tocDigest,
      convertSeconds: l.convertSeconds,
      open: opens[i],
      ...perLayer[i],
    })),
    manifest: { requests: manifestRequests, bytes: manifestBytes },
    cat: { ...catStats, seconds: catSeconds },
    library: {
      batched: { requests: batched.requests, bytesFetched: batched.bytesFetched },
      onDemand: { requests: onDemand.requests, bytesFetched: onDemand.bytesFetched },
    },
    requests: catStats.requests,
    bytesFetched: fetched,
    lowerBound,
    fetchedOverBound: fetched / lowerBound,
    fullPull,
    fetchedOverFullPullPercent: (100 * fetched) / fullPull,
    excess,
    maxOpenRequestsPerLayer: maxOpen,
    bars: {
      openRequestsPerLayerAtMost2: maxOpen <= 2,
      bytesFetchedWithin1_1xLowerBound: fetched <= 1.1 * lowerBound,
    },
    verified: mismatches.length === 0,
    mismatches,
  });
} finally {
  await registry.stop();
  if (!opts.keep) rmSync(OUT, { recursive: true, force: true });
}

const r = result;
if (opts.json) {
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
} else {
  const kb = (n) => `${fmt(n / 1024, 1)} KiB`;
  const mb = (n) => `${fmt(n / 1e6, 1)} MB`;
  const lines = [
    `Cold start of \`python3 -c "import json"\`: ${r.workload.files} files (${kb(r.workload.bytes)}) ` +
      `from a ${r.layers.length}-layer image on a loopback docker-registry, --no-cache.`,
    "",
    mdTable(
      [
        "requests",
        "bytes fetched",
        "lower bound",
        "fetched / bound",
        "full pull",
        "fetched / full pull",
      ],
      [
        [
          r.requests,
          `${r.bytesFetched} (${kb(r.bytesFetched)})`,
          `${r.lowerBound} (${kb(r.lowerBound)})`,
          `${fmt(r.fetchedOverBound, 2)}×`,
          `${r.fullPull} (${mb(r.fullPull)})`,
          `${fmt(r.fetchedOverFullPullPercent, 2)} %`,
        ],
      ],
    ),
    "",
    mdTable(
      [
        "layer",
        "blob",
        "files read",
        "open req (ls)",
        "open bytes",
        "read req",
        "read bytes",
        "footer+TOC",
        "chunk members",
        "bound",
      ],
      r.layers.map((l, i) => [
        i,
        mb(l.size),
        l.files,
        l.open.requests,
        kb(l.openBytes),
        l.readRequests,
        kb(l.readBytes),
        kb(l.tocMember),
        kb(l.members),
        kb(l.bound),
      ]),
    ),
    "",
    `Content: ${r.verified ? "every file matches the source layers (sha256)" : `MISMATCH: ${r.mismatches.join(", ")}`}.`,
    `Bar, open: at most 2 requests per layer — max ${r.maxOpenRequestsPerLayer} (${r.bars.openRequestsPerLayerAtMost2 ? "met" : "NOT met"}); manifest: ${r.manifest.requests} request(s).`,
    `Bar, bytes: fetched ≤ 1.1 × lower bound — ${fmt(r.fetchedOverBound, 3)}× (${r.bars.bytesFetchedWithin1_1xLowerBound ? "met" : "NOT met"}).`,
    `Above the bound: ${r.bytesFetched - r.lowerBound} B = tail read beyond the TOC member ${r.excess.tailBeyondToc} B ` +
      `+ range-coalescing gaps ${r.excess.coalescingGaps} B + manifest ${r.excess.manifest} B` +
      (r.excess.untouchedLayers
        ? ` + opening untouched layers ${r.excess.untouchedLayers} B.`
        : "."),
    `Library, batched like cat (per-layer table): ${r.library.batched.requests} requests, ${r.library.batched.bytesFetched} bytes; ` +
      `on demand (one file at a time, no prefetch): ${r.library.onDemand.requests} requests, ${r.library.onDemand.bytesFetched} bytes ` +
      `(${fmt(r.library.onDemand.bytesFetched / r.lowerBound, 3)}× bound); both include the manifest.`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
if (!r.verified) process.exitCode = 1;
