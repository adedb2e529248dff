#!/usr/bin/env node
// podman through an Additional Layer Store: `seekable store` against the reference store
// (tools/reference-store: stargz-snapshotter's store package, background fetch and prefetch
// off) on the real 3-layer python image (`node tools/bench-image.mjs` builds it), converted
// with `seekable convert` and served by a Debian docker-registry on loopback behind
// seekable's shaping proxy (packages/bench), which adds --rtt ms per request (+ one RTT per
// new connection) and optionally limits bandwidth (--mbit).
//
// Each run starts cold: a fresh store process (fresh cache dir / root), a fresh podman
// graphroot/runroot, proxy connections dropped. Measured: `podman pull` and `podman run
// python3 -c "import json"` wall times, and requests/bytes that crossed the proxy (pull +
// run, the manifest and config included). Needs root, FUSE, podman and runc.
//
// Usage: node bench/store.mjs [--repeat 3] [--rtt 25] [--mbit 0]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startShapingProxy } from "../packages/bench/dist/index.js";
import { mdTable, median, parseArgs, ROOT, SEEKABLE, startRegistry } from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { repeat: 3, rtt: 25, mbit: 0 });
const LAYOUT = join(ROOT, ".work/bench/python-oci");
const STORE_BIN = join(ROOT, "tools/reference-store/bin/stargz-store");
const log = (s) => process.stderr.write(`bench/store: ${s}\n`);

if (!existsSync(join(LAYOUT, "index.json"))) {
  throw new Error(`${LAYOUT} is missing: run node tools/bench-image.mjs first`);
}
if (!existsSync(STORE_BIN)) {
  execFileSync(join(ROOT, "tools/reference-store/build.sh"), { stdio: "inherit" });
}

function run(cmd, args, env) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.setEncoding("utf8").on("data", (d) => {
      out += d;
    });
    p.stderr.setEncoding("utf8").on("data", (d) => {
      err = (err + d).slice(-8192);
    });
    p.on("close", (code) => resolve({ code, out, err, ms: performance.now() - t0 }));
  });
}

const mountsUnder = (dir) =>
  readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m) => m === dir || m?.startsWith(`${dir}/`));

async function waitMounted(dir, proc) {
  const deadline = Date.now() + 30_000;
  while (mountsUnder(dir).length === 0) {
    if (proc.exitCode !== null) throw new Error(`store exited (${proc.exitCode})`);
    if (Date.now() > deadline) throw new Error(`store not mounted at ${dir} in 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function oneRun(kind, image, proxy) {
  const work = await mkdtemp(join(tmpdir(), `seekable-bench-store-${kind}-`));
  const storeDir = join(work, "store");
  await mkdir(storeDir);
  await writeFile(
    join(work, "storage.conf"),
    `[storage]\ndriver = "overlay"\nrunroot = "${work}/run"\ngraphroot = "${work}/root"\n\n[storage.options]\nadditionallayerstores = ["${storeDir}:ref"]\n`,
  );
  const env = { ...process.env, CONTAINERS_STORAGE_CONF: join(work, "storage.conf") };
  const store =
    kind === "seekable"
      ? spawn(process.execPath, [SEEKABLE, "store", storeDir, "--cache-dir", join(work, "cache")], {
          stdio: ["ignore", "ignore", "pipe"],
        })
      : spawn(STORE_BIN, ["-root", join(work, "refroot"), storeDir], {
          stdio: ["ignore", "ignore", "pipe"],
        });
  let storeErr = "";
  store.stderr.setEncoding("utf8").on("data", (d) => {
    storeErr = (storeErr + d).slice(-8192);
  });
  const podman = ["--runtime", "runc", "--cgroup-manager=cgroupfs"];
  try {
    await waitMounted(storeDir, store);
    proxy.dropConnections();
    proxy.reset();
    const pull = await run(
      "podman",
      [...podman, "--log-level=debug", "pull", "--tls-verify=false", image],
      env,
    );
    if (pull.code !== 0) throw new Error(`podman pull failed: ${pull.err}\n${storeErr}`);
    const skipped = (pull.err.match(/Skipping blob \S+ \(already present\)/g) ?? []).length;
    const r = await run(
      "podman",
      [
        ...podman,
        "run",
        "--rm",
        "--network=none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        image,
        "python3",
        "-c",
        "import json; print('ok')",
      ],
      env,
    );
    if (r.code !== 0 || r.out.trim() !== "ok") {
      throw new Error(`podman run failed: ${r.err}\n${storeErr}`);
    }
    return {
      pullMs: pull.ms,
      runMs: r.ms,
      requests: proxy.counters.requests,
      bytes: proxy.counters.bytes,
      skipped,
    };
  } finally {
    await run("podman", [...podman, "rmi", "-a", "-f"], env);
    if (store.exitCode === null) {
      const done = new Promise((r) => store.once("exit", r));
      store.kill("SIGTERM");
      await Promise.race([done, new Promise((r) => setTimeout(r, 20_000))]);
    }
    for (const m of mountsUnder(work).reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {}
    }
    await rm(work, { recursive: true, force: true });
  }
}

const registry = await startRegistry();
let proxy;
try {
  const target = `${registry.host}/bench/python:estargz`;
  log(`converting ${LAYOUT} to eStargz in ${target}`);
  const conv = JSON.parse(
    execFileSync(
      process.execPath,
      [SEEKABLE, "convert", `oci:${LAYOUT}:latest`, `docker://${target}`, "--json"],
      {
        encoding: "utf8",
        maxBuffer: 1 << 24,
      },
    ),
  );
  const imageBytes = conv.layers.reduce((n, l) => n + l.size, 0);
  proxy = await startShapingProxy({
    upstream: registry.url,
    link: { rttMs: opts.rtt, mbit: opts.mbit },
  });
  const image = `${proxy.host}/bench/python:estargz`;
  const results = { seekable: [], reference: [] };
  for (let i = 0; i < opts.repeat; i++) {
    // Alternate the order so neither store always runs on a warmer machine.
    const order = i % 2 === 0 ? ["seekable", "reference"] : ["reference", "seekable"];
    for (const kind of order) {
      const r = await oneRun(kind, image, proxy);
      log(
        `${kind} #${i + 1}: pull ${(r.pullMs / 1000).toFixed(2)} s, run ${(r.runMs / 1000).toFixed(2)} s, ${r.requests} requests, ${(r.bytes / 1048576).toFixed(2)} MiB, ${r.skipped} layers skipped`,
      );
      results[kind].push(r);
    }
  }
  const rows = Object.entries(results).map(([kind, rs]) => {
    const pull = median(rs.map((r) => r.pullMs)) / 1000;
    const runS = median(rs.map((r) => r.runMs)) / 1000;
    const total = median(rs.map((r) => r.pullMs + r.runMs)) / 1000;
    const bytes = median(rs.map((r) => r.bytes));
    return [
      kind === "seekable" ? "`seekable store`" : "reference store (stargz-store)",
      pull.toFixed(2),
      runS.toFixed(2),
      total.toFixed(2),
      String(median(rs.map((r) => r.requests))),
      `${(bytes / 1048576).toFixed(2)} MiB (${((100 * bytes) / imageBytes).toFixed(1)}%)`,
    ];
  });
  process.stdout.write(
    `podman pull + run python3 -c "import json", ${conv.layers.length}-layer image of ${(imageBytes / 1048576).toFixed(1)} MiB (eStargz), link +${opts.rtt} ms per request${opts.mbit ? `, ${opts.mbit} Mbit/s` : ""}; median of ${opts.repeat} cold runs; loaded machine (loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}), figures are indicative only\n\n`,
  );
  process.stdout.write(
    `${mdTable(["store", "pull s", "run s", "pull + run s", "requests", "fetched (of image)"], rows)}\n`,
  );
} finally {
  await proxy?.close();
  await registry.stop();
}
