// podman through an Additional Layer Store, one cold pull + run (bench/store.mjs and
// bench/containerd.mjs compare against it): a fresh store process and podman storage, the
// proxy's connections dropped and its counters zeroed once the store is mounted.
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, SEEKABLE } from "./lib.mjs";

const STORE_BIN = join(ROOT, "tools/reference-store/bin/stargz-store");

/** Runs `cmd args` to completion: exit code, stdout, the tail of stderr, wall ms. */
export function run(cmd, args, env) {
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

export const mountsUnder = (dir) =>
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

/**
 * One cold podman pull + run of `image` through a layer store of `kind` ("seekable": `seekable
 * store`; "profile": the same with `--prefetch profile`; "reference": the reference
 * stargz-store) in a fresh work dir, counted by `proxy` (reset after the store is up).
 */
export async function podmanStoreRun(kind, image, cmd, proxy, profile) {
  const work = await mkdtemp(join(tmpdir(), `seekable-bench-store-${kind}-`));
  const storeDir = join(work, "store");
  await mkdir(storeDir);
  await writeFile(
    join(work, "storage.conf"),
    `[storage]\ndriver = "overlay"\nrunroot = "${work}/run"\ngraphroot = "${work}/root"\n\n[storage.options]\nadditionallayerstores = ["${storeDir}:ref"]\n`,
  );
  const env = { ...process.env, CONTAINERS_STORAGE_CONF: join(work, "storage.conf") };
  const store =
    kind !== "reference"
      ? spawn(
          process.execPath,
          [
            SEEKABLE,
            "store",
            storeDir,
            "--cache-dir",
            join(work, "cache"),
            ...(kind === "profile" ? ["--prefetch", profile] : []),
          ],
          { stdio: ["ignore", "ignore", "pipe"] },
        )
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
        ...cmd,
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
