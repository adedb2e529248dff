#!/usr/bin/env node
// containerd with `seekable snapshotter` against containerd's own overlayfs snapshotter (a full
// pull) and against `seekable store` under podman, in the same run, on the real 3-layer python
// image of `node tools/bench-image.mjs` (and, with --images python,node, the node app of
// `--node-app`). The eStargz image is made with `seekable convert`; the full pull takes the
// original gzip image (skopeo copy of the same layout). Both are served by a Debian
// docker-registry on loopback behind seekable's shaping proxy (packages/bench): +RTT ms per
// request (+ one RTT per new connection), optionally a bandwidth limit; several links in one
// run with --links RTT:MBIT,... (0 Mbit: unlimited).
//
// Every run is cold: a fresh containerd (its own root, state, sockets), a fresh snapshotter
// root and chunk cache (or a fresh podman storage and store), the proxy's connections dropped
// and counters zeroed before the pull. Measured: the pull's and the run's wall times
// (`seekable pull` / `ctr images pull`, then `ctr run --rm`), requests and bytes that crossed
// the proxy (manifest and config included), and how many layers were left lazy. Needs root,
// FUSE, containerd, runc, podman, skopeo.
//
// Usage: node bench/containerd.mjs [--repeat 3] [--links 25:0,50:100] [--images python]
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startShapingProxy } from "../packages/bench/dist/index.js";
import { containerdConfig, criPullImage } from "../packages/snapshotter/dist/index.js";
import { mdTable, median, parseArgs, ROOT, SEEKABLE, startRegistry } from "./lib.mjs";
import { mountsUnder, podmanStoreRun, run } from "./podman-store.mjs";

const opts = parseArgs(process.argv.slice(2), {
  repeat: 3,
  links: "25:0,50:100",
  images: "python",
});
const log = (s) => process.stderr.write(`bench/containerd: ${s}\n`);

const WORKLOADS = {
  python: {
    layout: join(ROOT, ".work/bench/python-oci"),
    build: "node tools/bench-image.mjs",
    cmd: ["python3", "-c", "import json; print('ok')"],
    label: 'python3 -c "import json"',
  },
  node: {
    layout: join(ROOT, ".work/bench/node-oci"),
    build: "node tools/bench-image.mjs --node-app",
    cmd: ["sh", "-c", "cd /app && node -e \"require('express'); console.log('ok')\""],
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
const links = opts.links.split(",").map((l) => {
  const [rtt, mbit = "0"] = l.split(":");
  if (!/^\d+$/.test(rtt) || !/^\d+$/.test(mbit)) throw new Error(`--links: ${l} is not RTT:MBIT`);
  return { rttMs: Number(rtt), mbit: Number(mbit) };
});

async function waitFor(what, ok, proc, err) {
  const deadline = Date.now() + 30_000;
  while (!(await ok())) {
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}): ${err()}`);
    if (Date.now() > deadline) throw new Error(`${what} not up in 30 s: ${err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnLogged(cmd, args) {
  const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.setEncoding("utf8").on("data", (d) => {
    err = (err + d).slice(-8192);
  });
  return { p, err: () => err };
}

async function stop(p) {
  if (p.exitCode !== null) return;
  const done = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 20_000);
  await done;
  clearTimeout(t);
}

/**
 * One cold pull + run through containerd: kind "snapshotter" (`seekable pull` into
 * `seekable snapshotter`), "cri" (the CRI plugin's PullImage, as a kubelet asks, into
 * `seekable snapshotter`) or "overlayfs" (`ctr images pull` of the gzip image).
 */
async function containerdRun(kind, image, cmd, proxy) {
  const work = await mkdtemp(join(tmpdir(), `seekable-bench-ctd-${kind}-`));
  const dir = join(work, "containerd");
  const sock = join(work, "snapshotter.sock");
  await mkdir(dir);
  const cri = kind === "cri";
  await writeFile(join(dir, "config.toml"), containerdConfig({ dir, snapshotter: sock, cri }));
  const ctdSock = join(dir, "containerd.sock");
  const ns = cri ? "k8s.io" : "default";
  const ctr = (...args) => run("ctr", ["-a", ctdSock, "-n", ns, ...args]);
  const procs = [];
  try {
    if (kind !== "overlayfs") {
      const s = spawnLogged(process.execPath, [
        SEEKABLE,
        "snapshotter",
        "--address",
        sock,
        "--root",
        join(work, "root"),
        "--cache-dir",
        join(work, "cache"),
      ]);
      procs.push(s);
      await waitFor("snapshotter", () => existsSync(sock), s.p, s.err);
    }
    const c = spawnLogged("containerd", ["--config", join(dir, "config.toml")]);
    procs.push(c);
    await waitFor("containerd", async () => (await ctr("version")).code === 0, c.p, c.err);
    proxy.dropConnections();
    proxy.reset();
    const sn = kind === "overlayfs" ? "overlayfs" : "seekable";
    let pull;
    if (kind === "snapshotter") {
      pull = await run(process.execPath, [
        SEEKABLE,
        "pull",
        "--containerd",
        ctdSock,
        `docker://${image}`,
        "--json",
      ]);
    } else if (cri) {
      const t0 = performance.now();
      await criPullImage(ctdSock, image);
      pull = { code: 0, ms: performance.now() - t0 };
    } else {
      pull = await ctr("images", "pull", "--plain-http", "--snapshotter", sn, image);
    }
    if (pull.code !== 0) throw new Error(`${kind} pull failed: ${pull.err}`);
    // The snapshotter says which layers it left to containerd to unpack.
    const unpacked = (procs[0]?.err().match(/unpacked by containerd/g) ?? []).length;
    const r = await ctr(
      "run",
      "--rm",
      "--snapshotter",
      sn,
      "--runtime",
      "io.containerd.runc.v2",
      image,
      "bench",
      ...cmd,
    );
    if (r.code !== 0 || r.out.trim() !== "ok") {
      throw new Error(
        `${kind} run failed (${r.code}): ${r.out} ${r.err}\n${procs.map((x) => x.err()).join("\n")}`,
      );
    }
    const counted = { requests: proxy.counters.requests, bytes: proxy.counters.bytes };
    await ctr("images", "rm", "--sync", image);
    return { pullMs: pull.ms, runMs: r.ms, ...counted, unpacked };
  } finally {
    for (const x of procs.reverse()) await stop(x.p);
    for (const m of mountsUnder(work).reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {}
    }
    await rm(work, { recursive: true, force: true });
  }
}

const LABELS = {
  snapshotter: "containerd + `seekable snapshotter` (`seekable pull`)",
  cri: "containerd CRI PullImage + `seekable snapshotter`",
  overlayfs: "containerd overlayfs, full pull (gzip image)",
  store: "podman + `seekable store`",
};

const registry = await startRegistry();
try {
  const images = [];
  for (const name of names) {
    const w = WORKLOADS[name];
    const esgz = `${registry.host}/bench/${name}:estargz`;
    log(`converting ${w.layout} to eStargz in ${esgz}`);
    const conv = JSON.parse(
      execFileSync(
        process.execPath,
        [SEEKABLE, "convert", `oci:${w.layout}:latest`, `docker://${esgz}`, "--json"],
        {
          encoding: "utf8",
          maxBuffer: 1 << 24,
        },
      ),
    );
    execFileSync("skopeo", [
      "copy",
      "-q",
      "--dest-tls-verify=false",
      `oci:${w.layout}:latest`,
      `docker://${registry.host}/bench/${name}:gzip`,
    ]);
    images.push({
      name,
      w,
      layers: conv.layers.length,
      bytes: conv.layers.reduce((n, l) => n + l.size, 0),
    });
  }
  const out = [];
  for (const link of links) {
    const proxy = await startShapingProxy({ upstream: registry.url, link });
    const rows = [];
    try {
      for (const img of images) {
        const results = { snapshotter: [], cri: [], overlayfs: [], store: [] };
        for (let i = 0; i < opts.repeat; i++) {
          const kinds = Object.keys(results);
          for (const kind of kinds.map((_, k) => kinds[(k + i) % kinds.length])) {
            const esgz = `${proxy.host}/bench/${img.name}:estargz`;
            const r =
              kind === "store"
                ? await podmanStoreRun("seekable", esgz, img.w.cmd, proxy)
                : await containerdRun(
                    kind,
                    kind === "overlayfs" ? `${proxy.host}/bench/${img.name}:gzip` : esgz,
                    img.w.cmd,
                    proxy,
                  );
            log(
              `${img.name} ${link.rttMs} ms/${link.mbit || "∞"} Mbit ${kind} #${i + 1}: pull ${(r.pullMs / 1000).toFixed(2)} s, run ${(r.runMs / 1000).toFixed(2)} s, ${r.requests} requests, ${(r.bytes / 1048576).toFixed(2)} MiB`,
            );
            results[kind].push(r);
          }
        }
        const base = median(results.overlayfs.map((r) => r.pullMs + r.runMs));
        for (const [kind, rs] of Object.entries(results)) {
          const total = median(rs.map((r) => r.pullMs + r.runMs));
          const bytes = median(rs.map((r) => r.bytes));
          rows.push([
            `${img.w.label} (${img.layers} layers, ${(img.bytes / 1048576).toFixed(1)} MiB)`,
            LABELS[kind],
            (median(rs.map((r) => r.pullMs)) / 1000).toFixed(2),
            (median(rs.map((r) => r.runMs)) / 1000).toFixed(2),
            (total / 1000).toFixed(2),
            `${(base / total).toFixed(2)}×`,
            String(median(rs.map((r) => r.requests))),
            `${(bytes / 1048576).toFixed(2)} MiB`,
            `${((100 * bytes) / img.bytes).toFixed(1)}%`,
            kind === "overlayfs"
              ? "0"
              : kind === "store"
                ? `${median(rs.map((r) => r.skipped))} of ${img.layers}`
                : `${img.layers - median(rs.map((r) => r.unpacked))} of ${img.layers}`,
          ]);
        }
      }
    } finally {
      await proxy.close();
    }
    out.push(
      `link +${link.rttMs} ms per request${link.mbit ? `, ${link.mbit} Mbit/s` : ""}; median of ${opts.repeat} cold runs\n\n${mdTable(
        [
          "command (image)",
          "runtime",
          "pull s",
          "run s",
          "pull + run s",
          "vs full pull",
          "requests",
          "fetched",
          "of image",
          "lazy layers",
        ],
        rows,
      )}\n`,
    );
  }
  process.stdout.write(
    `${out.join("\n")}\nloadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")} at the end (a loaded machine makes the figures indicative only)\n`,
  );
} finally {
  await registry.stop();
}
