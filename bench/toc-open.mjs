#!/usr/bin/env node
// TOC open benchmark: how long a layer's TOC takes to parse, verify and index, and how soon a
// mount of a real 3-layer image answers its first stat.
//
//   1. TOC parse + index. Blobs whose TOC holds N entries (default 25k and 100k) are written to
//      .work/bench-toc/ (cached). Their TOCs are real in shape: the entries of the real image's
//      layers (tools/image/build-image.mjs, converted with `seekable convert`) repeated under
//      numbered prefixes, with modification times as a registry image has them. The payload
//      area is a sparse hole: opening reads only the footer and the TOC. Each measurement is a
//      fresh `node` process that opens the blob with LayerReader.open (footer, gunzip, sha256
//      checked against the known TOC digest, JSON parse, validation, index) and looks one path
//      up; it reports CPU ms (process.cpuUsage: every thread, V8's compiler and GC threads
//      included), wall ms and minor page faults of that call (a fault costs ~10-15 µs on a VM:
//      every fresh page the open touches counts). Median of --runs.
//      --impl DIR[,DIR...] compares builds of @seekable/format (a dist/index.js each; default
//      this tree's), e.g. an original commit checked out in a worktree and built with tsc -b
//      (format's dist needs no other package: a copy of packages/format/dist will do). Runs
//      alternate between them; with two, the ratio of their CPU medians is shown. An item may
//      carry node flags for its child after the path: "packages/format/dist/index.js
//      --no-concurrent-recompilation" (how a V8 setting would change an open).
//      Every run also times the peer in the same process kind: the same footer read, gunzip
//      and sha256, then JSON.parse + parseToc (what opening did before the scanner) and a
//      find of the path among the entries. "/ JSON" is the first implementation's CPU median
//      over the peer's: the scanner's performance contract is to stay below 1 (see
//      packages/format/src/toc-scan.ts); a regression shows there first.
//   2. --mount: starts Debian's docker-registry on loopback, pushes the converted image, and
//      measures, from process spawn: `seekable mount docker://…` until stat of etc/os-release
//      in the mount succeeds, and `seekable ls docker://… /etc/os-release` to exit (wall and
//      CPU from /usr/bin/time). Median of --runs.
//
// Usage: node bench/toc-open.mjs [--entries 25000,100000] [--runs 5]
//                               [--impl packages/format/dist/index.js,/tmp/orig/.../index.js]
//                               [--mount] [--cli packages/cli/dist/main.js,/tmp/orig/.../main.js]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  fmt,
  load,
  mdTable,
  median,
  pushImage,
  ROOT,
  runTimed,
  SEEKABLE,
  startRegistry,
  TIME,
  timeMountReady,
} from "./lib.mjs";

const DIR = join(ROOT, ".work/bench-toc");
const LOCAL_FORMAT = join(ROOT, "packages/format/dist/index.js");

// ---- child: one measured open ---------------------------------------------------------------
if (process.argv[2] === "--child-json") {
  // The peer: the open of the first implementation, with JSON.parse + parseToc for the scan.
  const [, , , impl, blob, tocDigest, probe] = process.argv;
  const fmtLib = await import(pathToFileURL(resolve(impl)).href);
  const src = await fmtLib.FileRangeSource.open(blob);
  const f0 = process.resourceUsage().minorPageFault;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const tailLen = Math.min(src.size, 65536);
  const [tail] = await src.read([{ offset: src.size - tailLen, length: tailLen }]);
  const footer = fmtLib.parseFooter(tail);
  const tocEnd = src.size - footer.footerSize;
  const [member] = await src.read([
    { offset: footer.tocOffset, length: tocEnd - footer.tocOffset },
  ]);
  const tar = gunzipSync(member);
  const size = Number.parseInt(tar.toString("latin1", 124, 136).replace(/[\0 ].*$/s, ""), 8);
  const json = tar.subarray(512, 512 + size);
  if (fmtLib.sha256Digest(json) !== tocDigest) throw new Error("TOC digest mismatch");
  const toc = fmtLib.parseToc(json);
  const found = toc.entries.find((e) => fmtLib.cleanEntryName(e.name) === probe);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const faults = process.resourceUsage().minorPageFault - f0;
  if (!found) throw new Error(`${probe} not found`);
  await src.close();
  process.stdout.write(
    `${JSON.stringify({ cpuMs: (c.user + c.system) / 1000, wallMs: wall, faults, rssMiB: process.memoryUsage().rss / 2 ** 20 })}\n`,
  );
  process.exit(0);
}
if (process.argv[2] === "--child") {
  const [, , , impl, blob, tocDigest, probe] = process.argv;
  const fmtLib = await import(pathToFileURL(resolve(impl)).href);
  const src = await fmtLib.FileRangeSource.open(blob);
  const f0 = process.resourceUsage().minorPageFault;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const reader = await fmtLib.LayerReader.open(src, { tocDigest });
  const found = reader.lookup(probe);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const faults = process.resourceUsage().minorPageFault - f0;
  if (!found) throw new Error(`${probe} not found`);
  await src.close();
  process.stdout.write(
    `${JSON.stringify({ cpuMs: (c.user + c.system) / 1000, wallMs: wall, faults, rssMiB: process.memoryUsage().rss / 2 ** 20 })}\n`,
  );
  process.exit(0);
}

const args = { entries: "25000,100000", runs: 5, impl: LOCAL_FORMAT, mount: false, cli: SEEKABLE };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, "");
  if (k === "mount") args.mount = true;
  else if (k in args) args[k] = k === "runs" ? Number(argv[++i]) : argv[++i];
  else {
    process.stderr.write(`toc-open: unknown argument ${argv[i]}\n`);
    process.exit(2);
  }
}
const log = (s) => process.stderr.write(`toc-open: ${s}\n`);

// ---- the real image, converted (cached) -----------------------------------------------------
function realLayers() {
  spawnSync(process.execPath, [join(ROOT, "tools/image/build-image.mjs")], { stdio: "inherit" });
  mkdirSync(DIR, { recursive: true });
  const out = [];
  for (const i of [1, 2, 3]) {
    const blob = join(DIR, `real-layer${i}.esgz`);
    const meta = `${blob}.json`;
    if (!existsSync(meta)) {
      log(`converting layer${i}.tar`);
      const r = spawnSync(
        process.execPath,
        [SEEKABLE, "convert", join(ROOT, `.work/image/layer${i}.tar`), `${blob}.tmp`, "--json"],
        { encoding: "utf8" },
      );
      if (r.status !== 0) throw new Error(`convert layer${i}: ${r.stderr}`);
      renameSync(`${blob}.tmp`, blob);
      writeFileSync(meta, r.stdout);
    }
    out.push({ ...JSON.parse(readFileSync(meta, "utf8")), blob });
  }
  return out;
}

// ---- synthetic blobs: real entries repeated --------------------------------------------------
async function synthBlob(n, templates) {
  const blob = join(DIR, `toc-${n}.esgz`);
  const meta = `${blob}.json`;
  if (existsSync(meta)) return { ...JSON.parse(readFileSync(meta, "utf8")), blob };
  const { serializeToc, encodeFooter, emptyHeader, encodeHeader, padding } = await import(
    pathToFileURL(LOCAL_FORMAT).href
  );
  // Units: an entry and the chunk entries that continue it (never cut apart).
  const units = [];
  for (const e of templates) {
    if (e.type === "chunk") units[units.length - 1]?.push(e);
    else if (!e.name.endsWith(".landmark")) units.push([e]);
  }
  const entries = [];
  let offset = 0;
  const stamp = (k) => `2024-0${1 + (k % 9)}-1${k % 10}T0${k % 10}:1${k % 6}:2${k % 10}Z`;
  for (let rep = 0; entries.length < n; rep++) {
    const prefix = `r${rep}/`;
    entries.push({ name: prefix, type: "dir", mode: 493, modtime: stamp(rep) });
    for (const unit of units) {
      if (entries.length + unit.length > n) break;
      for (const e of unit) {
        const c = { ...e, name: prefix + e.name };
        if (c.type !== "chunk") c.modtime = stamp(entries.length);
        if (c.type === "hardlink") c.linkName = prefix + c.linkName;
        if (e.offset) {
          offset += 200 + Math.floor((e.chunkSize || e.size || 0) / 3);
          c.offset = offset;
        }
        entries.push(c);
      }
    }
    if (entries.length + units[0].length > n) break;
  }
  const json = serializeToc({ version: 1, entries });
  const h = emptyHeader("stargz.index.json", "0");
  h.size = json.length;
  const member = gzipSync(
    Buffer.concat([encodeHeader(h), json, Buffer.alloc(padding(json.length) + 1024)]),
  );
  const tocOffset = offset + (1 << 20);
  const fd = openSync(`${blob}.tmp`, "w");
  ftruncateSync(fd, tocOffset); // sparse payload area
  writeSync(fd, member, 0, member.length, tocOffset);
  const footer = encodeFooter(tocOffset);
  writeSync(fd, footer, 0, footer.length, tocOffset + member.length);
  closeSync(fd);
  renameSync(`${blob}.tmp`, blob);
  const info = {
    entries: entries.length,
    tocDigest: `sha256:${createHash("sha256").update(json).digest("hex")}`,
    tocJsonBytes: json.length,
    probe: entries.find((e) => e.type === "reg" && e.name.includes("/usr/")).name,
  };
  writeFileSync(meta, JSON.stringify(info));
  return { ...info, blob };
}

function runChild(spec, b, mode = "--child") {
  // "PATH --flag ...": node flags for the child after the path (e.g. a V8 flag to try).
  const [impl, ...nodeFlags] = spec.trim().split(/\s+/);
  const r = spawnSync(
    process.execPath,
    [...nodeFlags, process.argv[1], mode, impl, b.blob, b.tocDigest, b.probe],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---- main -----------------------------------------------------------------------------------
const real = realLayers();
const { LayerReader, FileRangeSource } = await import(pathToFileURL(LOCAL_FORMAT).href);
const templates = [];
const blobs = [];
for (const l of real) {
  const src = await FileRangeSource.open(l.blob);
  const r = await LayerReader.open(src);
  const tocEntries = JSON.parse(Buffer.from(r.tocBytes).toString("utf8")).entries;
  templates.push(...tocEntries);
  const probe = tocEntries.find((e) => e.type === "reg" && !e.name.endsWith(".landmark")).name;
  blobs.push({
    label: `real ${l.blob.split("/").pop()}`,
    blob: l.blob,
    tocDigest: l.tocDigest,
    probe,
    entries: tocEntries.length,
    tocJsonBytes: r.tocBytes.length,
  });
  await src.close();
}
for (const n of args.entries.split(",").map(Number)) {
  const b = await synthBlob(n, templates);
  blobs.push({ label: `synthetic ${n / 1000}k`, ...b });
}

const impls = args.impl.split(",");
log(`load ${load()}, ${args.runs} runs per cell, implementations: ${impls.join(" ")}`);
const rows = [];
for (const b of blobs) {
  const cells = [b.label, String(b.entries), fmt(b.tocJsonBytes / 2 ** 20, 1)];
  // Runs alternate between implementations, so that a busy machine weighs on each alike.
  const ms = impls.map(() => []);
  const peer = [];
  for (let i = 0; i < args.runs; i++) {
    for (let k = 0; k < impls.length; k++) ms[k].push(runChild(impls[k], b));
    peer.push(runChild(impls[0], b, "--child-json"));
  }
  const cpu = ms.map((m) => median(m.map((r) => r.cpuMs)));
  const cell = (m, c) => [
    `${fmt(c, 0)} / ${fmt(median(m.map((r) => r.wallMs)), 0)}`,
    fmt(median(m.map((r) => r.rssMiB)), 0),
    fmt(median(m.map((r) => r.faults)), 0),
  ];
  impls.forEach((_, k) => {
    cells.push(...cell(ms[k], cpu[k]));
  });
  const peerCpu = median(peer.map((r) => r.cpuMs));
  cells.push(...cell(peer, peerCpu), fmt(cpu[0] / peerCpu, 2));
  if (impls.length > 1) cells.push(fmt(cpu[0] / cpu[1], 2));
  rows.push(cells);
  log(cells.join("  "));
}
const header = ["TOC", "entries", "JSON MiB"];
for (const impl of impls) {
  const name = impl === LOCAL_FORMAT ? "this tree" : impl;
  header.push(`${name}: CPU / wall ms`, "RSS MiB", "page faults");
}
header.push("JSON.parse + parseToc: CPU / wall ms", "RSS MiB", "page faults", "CPU / JSON");
if (impls.length > 1) header.push("CPU ratio first / second");
process.stdout.write(
  `\n### TOC open (LayerReader.open + one lookup, fresh process, median of ${args.runs}; load ${load()})\n\n${mdTable(header, rows)}\n`,
);

if (args.mount) await mountBench();

// ---- mount-ready time -----------------------------------------------------------------------
async function mountBench() {
  const registry = await startRegistry();
  const mnt = mkdtempSync(join(tmpdir(), "toc-open-mnt-"));
  const cache = mkdtempSync(join(tmpdir(), "toc-open-cache-"));
  try {
    const ref = await pushImage(registry.host, "bench/tocopen", "v1", real);
    const target = `docker://${ref}`;
    const rows2 = [];
    for (const cli of args.cli.split(",")) {
      const ready = [];
      const lsRuns = [];
      for (let i = 0; i < args.runs; i++) {
        ready.push(await mountReady(cli, target, mnt));
        lsRuns.push(
          await runTimed(process.execPath, [cli, "ls", target, "/etc/os-release", "--no-cache"]),
        );
      }
      const name = cli === SEEKABLE ? "this tree" : cli;
      rows2.push(
        [
          `${name}: mount until stat(etc/os-release) succeeds`,
          fmt(median(ready.map((r) => r.ms)), 0),
          "—",
        ],
        [
          `${name}: ls docker://… /etc/os-release (whole process)`,
          fmt(median(lsRuns.map((r) => r.wall * 1000)), 0),
          fmt(median(lsRuns.map((r) => r.cpu * 1000)), 0),
        ],
      );
    }
    process.stdout.write(
      `\n### Ready time on loopback (3-layer image, ${real.reduce((s, l) => s + l.entries, 0)} entries, process start included, median of ${args.runs})\n\n${mdTable(["what", "wall ms", "CPU ms"], rows2)}\n`,
    );
  } finally {
    rmSync(cache, { recursive: true, force: true });
    await registry.stop();
  }

  async function mountReady(cli, target, dir) {
    return { ms: (await timeMountReady(cli, target, dir, { pollMs: 5 })).ms };
  }
}
void TIME;
