#!/usr/bin/env node
// podman through an Additional Layer Store: `seekable store` against the reference store
// (tools/reference-store: stargz-snapshotter's store package, background fetch and prefetch
// off) on the real 3-layer images of `node tools/bench-image.mjs`: python (`python3 -c
// "import json"`) and, built with `--node-app`, the node app (the same base and python
// layers, a ~22k-entry app layer: `cd /app && node -e "require('express')"`). Each is
// converted with `seekable convert` and served by a Debian docker-registry on loopback
// behind seekable's shaping proxy (packages/bench), which adds --rtt ms per request (+ one
// RTT per new connection) and optionally limits bandwidth (--mbit).
//
// Each run starts cold: a fresh store process (fresh cache dir / root), a fresh podman
// graphroot/runroot, proxy connections dropped. Measured: `podman pull` and `podman run`
// wall times, and requests/bytes that crossed the proxy (pull + run, the manifest and
// config included). `seekable store` runs twice: on demand, and with `--prefetch FILE`, the
// profile recorded beforehand (set-up, not measured) the way a user records one: `seekable
// mount --record` of the image and the command in a chroot of it. Needs root, FUSE, podman
// and runc.
//
// Usage: node bench/store.mjs [--repeat 3] [--rtt 25] [--mbit 0] [--images python,node]
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
// recordStart: the recording step `seekable bench` uses for its profiles.
import { recordStart, startShapingProxy } from "../packages/bench/dist/index.js";
import { mdTable, median, parseArgs, ROOT, SEEKABLE, startRegistry } from "./lib.mjs";
import { podmanStoreRun } from "./podman-store.mjs";

const opts = parseArgs(process.argv.slice(2), {
  repeat: 3,
  rtt: 25,
  mbit: 0,
  images: "python,node",
});
const STORE_BIN = join(ROOT, "tools/reference-store/bin/stargz-store");
const log = (s) => process.stderr.write(`bench/store: ${s}\n`);

/** The workloads: an image layout (tools/bench-image.mjs) and the command run in it. */
const WORKLOADS = {
  python: {
    layout: join(ROOT, ".work/bench/python-oci"),
    build: "node tools/bench-image.mjs",
    cmd: ["python3", "-c", "import json; print('ok')"],
    shell: `python3 -c "import json; print('ok')"`,
    label: 'python3 -c "import json"',
  },
  node: {
    layout: join(ROOT, ".work/bench/node-oci"),
    build: "node tools/bench-image.mjs --node-app",
    cmd: ["sh", "-c", "cd /app && node -e \"require('express'); console.log('ok')\""],
    shell: "cd /app && node -e \"require('express'); console.log('ok')\"",
    label: "node -e \"require('express')\"",
  },
};
const names = opts.images.split(",").filter((n) => n !== "");
for (const n of names) {
  const w = WORKLOADS[n];
  if (!w) throw new Error(`--images: unknown image ${n} (python, node)`);
  if (!existsSync(join(w.layout, "index.json"))) {
    throw new Error(`${w.layout} is missing: run ${w.build} first`);
  }
}
if (!existsSync(STORE_BIN)) {
  execFileSync(join(ROOT, "tools/reference-store/build.sh"), { stdio: "inherit" });
}

const registry = await startRegistry();
let proxy;
try {
  const images = [];
  for (const name of names) {
    const w = WORKLOADS[name];
    const target = `${registry.host}/bench/${name}:estargz`;
    log(`converting ${w.layout} to eStargz in ${target}`);
    const conv = JSON.parse(
      execFileSync(
        process.execPath,
        [SEEKABLE, "convert", `oci:${w.layout}:latest`, `docker://${target}`, "--json"],
        { encoding: "utf8", maxBuffer: 1 << 24 },
      ),
    );
    images.push({
      name,
      w,
      layers: conv.layers.length,
      bytes: conv.layers.reduce((n, l) => n + l.size, 0),
    });
  }
  proxy = await startShapingProxy({
    upstream: registry.url,
    link: { rttMs: opts.rtt, mbit: opts.mbit },
  });
  const rows = [];
  const LABELS = {
    seekable: "`seekable store`",
    profile: "`seekable store --prefetch FILE`",
    reference: "reference store (stargz-store)",
  };
  for (const img of images) {
    const image = `${proxy.host}/bench/${img.name}:estargz`;
    // The profile: recorded from the registry directly (not through the proxy).
    const recDir = await mkdtemp(join(tmpdir(), `seekable-bench-store-record-${img.name}-`));
    const rec = await recordStart(
      { file: process.execPath, args: [SEEKABLE] },
      `docker://${registry.host}/bench/${img.name}:estargz`,
      img.w.shell,
      { dir: recDir },
    );
    log(`${img.name}: recorded a profile of ${rec.paths.length} files`);
    const results = { seekable: [], profile: [], reference: [] };
    for (let i = 0; i < opts.repeat; i++) {
      // Rotate the order so no store always runs on a warmer machine.
      const kinds = Object.keys(results);
      const order = kinds.map((_, k) => kinds[(k + i) % kinds.length]);
      for (const kind of order) {
        const r = await podmanStoreRun(kind, image, img.w.cmd, proxy, rec.profile);
        log(
          `${img.name} ${kind} #${i + 1}: pull ${(r.pullMs / 1000).toFixed(2)} s, run ${(r.runMs / 1000).toFixed(2)} s, ${r.requests} requests, ${(r.bytes / 1048576).toFixed(2)} MiB, ${r.skipped} layers skipped`,
        );
        results[kind].push(r);
      }
    }
    for (const [kind, rs] of Object.entries(results)) {
      const bytes = median(rs.map((r) => r.bytes));
      rows.push([
        `${img.w.label} (${img.layers} layers, ${(img.bytes / 1048576).toFixed(1)} MiB)`,
        LABELS[kind],
        (median(rs.map((r) => r.pullMs)) / 1000).toFixed(2),
        (median(rs.map((r) => r.runMs)) / 1000).toFixed(2),
        (median(rs.map((r) => r.pullMs + r.runMs)) / 1000).toFixed(2),
        String(median(rs.map((r) => r.requests))),
        `${(bytes / 1048576).toFixed(2)} MiB`,
        `${((100 * bytes) / img.bytes).toFixed(1)}%`,
      ]);
    }
    await rm(recDir, { recursive: true, force: true });
  }
  process.stdout.write(
    `podman pull + run of eStargz images, link +${opts.rtt} ms per request${opts.mbit ? `, ${opts.mbit} Mbit/s` : ""}; median of ${opts.repeat} cold runs; loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")} at the end (a loaded machine makes the figures indicative only)\n\n`,
  );
  process.stdout.write(
    `${mdTable(["command (image)", "store", "pull s", "run s", "pull + run s", "requests", "fetched", "of image"], rows)}\n`,
  );
} finally {
  await proxy?.close();
  await registry.stop();
}
