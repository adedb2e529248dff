#!/usr/bin/env node
// Mount-ready benchmark: from process start to the first answered stat, and where the time goes.
//
// Starts Debian's docker-registry on loopback, pushes the real 3-layer image (the layers
// bench/toc-open.mjs converts and caches in .work/bench-toc/; converted here when missing),
// and measures from spawn, --runs times each (medians):
//   - `seekable mount docker://… DIR --no-cache` until stat(DIR/etc/os-release) succeeds
//     (polled every 2 ms), and
//   - `seekable ls docker://… /etc/os-release --no-cache` until the process exits,
// with SEEKABLE_TIMING=1, which makes the CLI print its performance marks on stderr (one
// `seekable-timing {...}` line: when the mount is up, and at exit). Every mark is shown as ms
// since spawn; the first row is node's own start (spawn to the process' time origin, plus
// node's bootstrap). `node -e 0` is measured too, as the floor for any node process.
//
// Usage: node bench/mount-ready.mjs [--runs 5] [--cli packages/cli/dist/main.js[,OTHER/main.js]]
//                                  [--keep]   (print the image reference and keep the registry up)
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  fmt,
  load,
  mdTable,
  median,
  parseArgs,
  pushImage,
  ROOT,
  runTimed,
  SEEKABLE,
  startRegistry,
  timeMountReady,
} from "./lib.mjs";

const args = parseArgs(process.argv.slice(2), { runs: 5, cli: SEEKABLE, keep: false });
const log = (s) => process.stderr.write(`mount-ready: ${s}\n`);
const DIR = join(ROOT, ".work/bench-toc");

/** The real image's three layers, converted with this tree's CLI (cached, as toc-open does). */
function realLayers() {
  const out = [];
  for (const i of [1, 2, 3]) {
    const blob = join(DIR, `real-layer${i}.esgz`);
    const meta = `${blob}.json`;
    if (!existsSync(meta)) {
      spawnSync(process.execPath, [join(ROOT, "tools/image/build-image.mjs")], {
        stdio: "inherit",
      });
      mkdirSync(DIR, { recursive: true });
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

/** The `seekable-timing` line of a child's stderr: marks as ms since `spawnedAt` (epoch ms). */
function marks(stderr, spawnedAt, drop = []) {
  // The last line: a mount prints one when mounted and one at exit (with the FUSE requests).
  const line = stderr
    .split("\n")
    .filter((l) => l.startsWith("seekable-timing "))
    .pop();
  if (!line) return {};
  const t = JSON.parse(line.slice("seekable-timing ".length));
  const out = { "node started (time origin)": t.origin - spawnedAt };
  for (const [name, at] of t.marks) if (!drop.includes(name)) out[name] = t.origin + at - spawnedAt;
  return out;
}

const env = { ...process.env, SEEKABLE_TIMING: "1" };

/** User + system CPU ms of a running process (/proc, clock ticks of 10 ms). */
function procCpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function mountOnce(cli, target, dir) {
  const r = await timeMountReady(cli, target, dir, {
    env,
    atReady: (child) => procCpuMs(child.pid),
  });
  return {
    total: r.ms,
    cpuMs: r.extra,
    marks: marks(r.stderr, r.spawnedAt, ["cli: process exit"]),
  };
}

async function lsOnce(cli, target) {
  // Under GNU time: CPU of the whole process (builds without SEEKABLE_TIMING report it too).
  const spawnedAt = performance.timeOrigin + performance.now();
  const r = await runTimed(process.execPath, [cli, "ls", target, "/etc/os-release", "--no-cache"], {
    env,
  });
  if (!r.stdout.includes("os-release")) throw new Error(`ls printed no os-release: ${r.stderr}`);
  return { total: r.wall * 1000, cpuMs: r.cpu * 1000, marks: marks(r.stderr, spawnedAt) };
}

function nodeFloor() {
  const spawnedAt = performance.timeOrigin + performance.now();
  spawnSync(process.execPath, ["-e", "0"]);
  return performance.timeOrigin + performance.now() - spawnedAt;
}

const real = realLayers();
const registry = await startRegistry();
const mnt = mkdtempSync(join(tmpdir(), "mount-ready-mnt-"));
try {
  const ref = await pushImage(registry.host, "bench/mountready", "v1", real);
  const target = `docker://${ref}`;
  if (args.keep) {
    process.stdout.write(`${target}\n`);
    log("registry up; Ctrl-C stops it");
    await new Promise((r) => process.once("SIGINT", r));
  } else {
    const entries = real.reduce((s, l) => s + l.entries, 0);
    const clis = args.cli.split(",");
    const results = new Map(clis.map((c) => [c, { mounts: [], lss: [] }]));
    const floors = [];
    // Runs interleave the builds compared, so that they share the machine's load.
    for (let i = 0; i < args.runs; i++) {
      floors.push(nodeFloor());
      for (const cli of clis) {
        const r = results.get(cli);
        r.mounts.push(await mountOnce(cli, target, mnt));
        r.lss.push(await lsOnce(cli, target));
        log(
          `${cli}: run ${i + 1}: mount ${fmt(r.mounts.at(-1).total, 0)} ms (CPU ${fmt(r.mounts.at(-1).cpuMs, 0)}), ls ${fmt(r.lss.at(-1).total, 0)} ms (CPU ${fmt(r.lss.at(-1).cpuMs, 0)})`,
        );
      }
    }
    const summary = [];
    for (const cli of clis) {
      const { mounts, lss } = results.get(cli);
      const names = [];
      for (const r of [...mounts, ...lss])
        for (const n of Object.keys(r.marks)) if (!names.includes(n)) names.push(n);
      const cell = (runs, n) => {
        const xs = runs.map((r) => r.marks[n]).filter((x) => x !== undefined);
        return xs.length ? fmt(median(xs), 0) : "—";
      };
      // Marks in the order they happen (medians over both commands).
      const at = (n) => {
        const xs = [...mounts, ...lss].map((r) => r.marks[n]).filter((x) => x !== undefined);
        return median(xs);
      };
      names.sort((a, b) => at(a) - at(b));
      const rows = [
        ["`node -e 0` (spawn to exit: the floor)", fmt(median(floors), 0), fmt(median(floors), 0)],
      ];
      for (const n of names) rows.push([n, cell(mounts, n), cell(lss, n)]);
      const total = (runs) => fmt(median(runs.map((r) => r.total)), 0);
      const cpu = (runs) => fmt(median(runs.map((r) => r.cpuMs)), 0);
      rows.push([
        "**first stat answered** (mount) / **process exit** (ls)",
        `**${total(mounts)}**`,
        `**${total(lss)}**`,
      ]);
      rows.push(["CPU ms of the process until then", cpu(mounts), cpu(lss)]);
      const name = cli === SEEKABLE ? "this tree" : cli;
      summary.push([name, total(mounts), cpu(mounts), total(lss), cpu(lss)]);
      process.stdout.write(
        `\n### Process start → first stat, ${name} (3-layer image, ${entries} entries, loopback, median of ${args.runs}; ms since spawn; load ${load()})\n\n${mdTable(["step (ms since spawn)", "`seekable mount`", "`seekable ls … /etc/os-release`"], rows)}\n`,
      );
    }
    process.stdout.write(
      `\n### Summary (median of ${args.runs}, \`node -e 0\` ${fmt(median(floors), 0)} ms)\n\n${mdTable(["build", "mount: first stat ms", "mount: CPU ms", "ls: exit ms", "ls: CPU ms"], summary)}\n`,
    );
  }
} finally {
  rmSync(mnt, { recursive: true, force: true });
  await registry.stop();
}
