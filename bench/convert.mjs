#!/usr/bin/env node
// Conversion benchmark on the real-data corpus (.work/corpus/layer.tar.gz, built on demand):
// seekable (defaults, level 9, and a level sweep) vs the reference Go converter
// (tools/reference/bin/estargz-ref: defaults = level 9, and level 6) vs plain gzip -6 and
// pigz -6 -p2 of the uncompressed tar (the physical limit of one deflate stream).
//
// Usage: node bench/convert.mjs [--repeat 3] [--levels 1,3,5,6,7,9] [--json] [--keep]
// Wall time is the median of the repeats (run round-robin to spread machine noise); MB/s is
// the uncompressed tar size / median wall; MB per CPU-s uses user+sys time (less sensitive to
// other load on a shared machine); peak RSS is the largest max-RSS seen (GNU time).
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  ensureCorpus,
  ensureSeekable,
  ensureTime,
  findReference,
  fmt,
  load,
  mdTable,
  median,
  parseArgs,
  runTimed,
  SEEKABLE,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), {
  repeat: 3,
  levels: "1,3,5,6,7,9",
  json: false,
  keep: false,
});
const sweep = opts.levels.split(",").map(Number);

ensureTime();
ensureSeekable();
const corpus = ensureCorpus();
const reference = findReference();
const outDir = join(WORK, "bench-convert");
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

/** @type {{id:string, tool:string, level:number, main:boolean, run:(out:string)=>Promise<any>}[]} */
const configs = [];
const seekable = (level, main) => ({
  id: `seekable-L${level}`,
  tool: level === 6 ? "seekable (default)" : "seekable",
  level,
  main,
  run: async (out) => {
    const args = [SEEKABLE, "convert", corpus.tgz, out, "--json"];
    if (level !== 6) args.push("--level", String(level));
    const r = await runTimed(process.execPath, args);
    r.report = JSON.parse(r.stdout);
    return r;
  },
});
configs.push(seekable(6, true), seekable(9, true));
if (reference) {
  configs.push({
    id: "reference-default",
    tool: "reference estargz (default)",
    level: 9,
    main: true,
    run: (out) => runTimed(reference, ["build", corpus.tgz, out]),
  });
  configs.push({
    id: "reference-L6",
    tool: "reference estargz",
    level: 6,
    main: true,
    run: (out) => runTimed(reference, ["build", "-level", "6", corpus.tgz, out]),
  });
}
configs.push({
  id: "gzip-6",
  tool: "gzip -6 (tar)",
  level: 6,
  main: true,
  run: (out) => runTimed("gzip", ["-6", "-n", "-c"], { stdin: corpus.tar, stdout: out }),
});
configs.push({
  id: "pigz-6",
  tool: "pigz -6 -p2 (tar)",
  level: 6,
  main: true,
  run: (out) => runTimed("pigz", ["-6", "-n", "-p", "2", "-c"], { stdin: corpus.tar, stdout: out }),
});
for (const level of sweep) {
  if (level !== 6 && level !== 9) configs.push(seekable(level, false));
}

const loadBefore = load();
const results = new Map(configs.map((c) => [c.id, { ...c, runs: [] }]));
for (let r = 0; r < opts.repeat; r++) {
  for (const c of configs) {
    const out = join(outDir, `${c.id}.out`);
    const res = await c.run(out);
    res.size = statSync(out).size;
    if (!opts.keep || r < opts.repeat - 1) rmSync(out, { force: true });
    results.get(c.id).runs.push(res);
    process.stderr.write(
      `[${r + 1}/${opts.repeat}] ${c.id}: ${res.wall.toFixed(2)} s, ${res.rssMiB.toFixed(0)} MiB, ${res.size} B (load ${load()})\n`,
    );
  }
}
const loadAfter = load();
if (!opts.keep) rmSync(outDir, { recursive: true, force: true });

const MB = 1e6;
const summary = {};
for (const [id, r] of results) {
  const wall = median(r.runs.map((x) => x.wall));
  const sizes = new Set(r.runs.map((x) => x.size));
  const digests = new Set(r.runs.map((x) => x.report?.digest).filter(Boolean));
  summary[id] = {
    tool: r.tool,
    level: r.level,
    main: r.main,
    wallMedian: wall,
    walls: r.runs.map((x) => x.wall),
    cpuMedian: median(r.runs.map((x) => x.cpu)),
    mbps: corpus.tarSize / MB / wall,
    mbPerCpuSec: corpus.tarSize / MB / median(r.runs.map((x) => x.cpu)),
    peakRssMiB: Math.max(...r.runs.map((x) => x.rssMiB)),
    size: r.runs.at(-1).size,
    deterministic: sizes.size === 1 && digests.size <= 1,
    report: r.runs.at(-1).report,
  };
}
const refAt = (level) =>
  level === 9 ? summary["reference-default"] : level === 6 ? summary["reference-L6"] : undefined;
const vsRef = (s) => {
  const ref = refAt(s.level);
  return ref ? (s.size / ref.size - 1) * 100 : Number.NaN;
};
const pct = (x) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(2)}%` : "n/a");

const mainRows = Object.values(summary)
  .filter((s) => s.main)
  .map((s) => [
    s.tool,
    String(s.level),
    fmt(s.wallMedian, 2),
    fmt(s.mbps, 1),
    fmt(s.cpuMedian, 1),
    fmt(s.mbPerCpuSec, 1),
    fmt(s.peakRssMiB, 0),
    String(s.size),
    pct(vsRef(s)),
  ]);
const sweepRows = sweep
  .map((l) => summary[`seekable-L${l}`])
  .filter(Boolean)
  .map((s) => [
    String(s.level),
    fmt(s.wallMedian, 2),
    fmt(s.mbps, 1),
    fmt(s.mbPerCpuSec, 1),
    fmt(s.peakRssMiB, 0),
    String(s.size),
    `${fmt((s.size / corpus.tarSize) * 100, 2)}%`,
    pct(vsRef(s)),
  ]);

const sDef = summary["seekable-L6"];
const s9 = summary["seekable-L9"];
const rDef = summary["reference-default"];
const r6 = summary["reference-L6"];
const bars = {
  throughputRatio: rDef ? sDef.mbps / rDef.mbps : null,
  cpuEfficiencyRatio: rDef ? sDef.mbPerCpuSec / rDef.mbPerCpuSec : null,
  throughputRatioSameLevel6: r6 ? sDef.mbps / r6.mbps : null,
  throughputRatioSameLevel9: rDef ? s9.mbps / rDef.mbps : null,
  sizeVsReferenceL6Pct: r6 ? vsRef(sDef) : null,
  sizeVsReferenceL9Pct: rDef ? vsRef(s9) : null,
  seekablePeakRssMiB: sDef.peakRssMiB,
  seekablePeakRssMiBL9: s9.peakRssMiB,
  seekableDeterministic: Object.values(summary)
    .filter((s) => s.tool.startsWith("seekable"))
    .every((s) => s.deterministic),
};
const verdict = (ok) => (ok === null ? "n/a" : ok ? "PASS" : "FAIL");

const text = [
  `Corpus: ${corpus.tgz} (${corpus.tarSize} B uncompressed tar), repeat ${opts.repeat}, ` +
    `load avg before ${loadBefore}, after ${loadAfter}` +
    (reference
      ? ""
      : "\nReference binary not found (tools/reference/bin/estargz-ref): its rows are missing."),
  "",
  mdTable(
    [
      "tool",
      "level",
      "wall s (median)",
      "MB/s (uncompressed)",
      "CPU s",
      "MB per CPU-s",
      "peak RSS MiB",
      "output B",
      "vs ref same level",
    ],
    mainRows,
  ),
  "",
  mdTable(
    [
      "seekable level",
      "wall s",
      "MB/s",
      "MB per CPU-s",
      "peak RSS MiB",
      "output B",
      "of tar",
      "vs ref same level",
    ],
    sweepRows,
  ),
  "",
  `- throughput seekable default / reference default: ${bars.throughputRatio === null ? "n/a" : `${bars.throughputRatio.toFixed(2)}x`} (bar >= 3x: ${verdict(bars.throughputRatio === null ? null : bars.throughputRatio >= 3)})` +
    (r6
      ? `; same level 6: ${bars.throughputRatioSameLevel6.toFixed(2)}x; same level 9: ${bars.throughputRatioSameLevel9.toFixed(2)}x` +
        `; per CPU-second (load-independent) default vs default: ${bars.cpuEfficiencyRatio.toFixed(2)}x`
      : ""),
  `- size seekable vs reference at level 6: ${pct(bars.sizeVsReferenceL6Pct ?? Number.NaN)}; at level 9: ${pct(bars.sizeVsReferenceL9Pct ?? Number.NaN)} (bar <= +2%: ${verdict(bars.sizeVsReferenceL6Pct === null ? null : bars.sizeVsReferenceL6Pct <= 2 && bars.sizeVsReferenceL9Pct <= 2)})`,
  `- seekable peak RSS: default ${fmt(sDef.peakRssMiB, 0)} MiB, level 9 ${fmt(s9.peakRssMiB, 0)} MiB (bar <= 256 MiB: ${verdict(Math.max(sDef.peakRssMiB, s9.peakRssMiB) <= 256)})`,
  `- seekable output identical across repeats: ${bars.seekableDeterministic ? "yes" : "NO"}`,
].join("\n");

if (opts.json) {
  process.stdout.write(
    `${JSON.stringify({ corpus, repeat: opts.repeat, loadBefore, loadAfter, reference, summary, bars }, null, 2)}\n`,
  );
  process.stderr.write(`${text}\n`);
} else {
  process.stdout.write(`${text}\n`);
}
