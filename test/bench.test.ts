// `seekable bench` against the real registry (Debian docker-registry on loopback) with a
// small two-layer plain tar.gz image made here (so the bench converts it first), and the
// shaping proxy on its own (delay per request, shared bandwidth).
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { gzipSync } from "node:zlib";
import { type ShapingProxy, startShapingProxy } from "@seekable/bench";
import { parseReference, pushBlob, putManifest, RegistryClient } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, seekable } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha } from "./helpers/tar.js";

/** Minimal well-formedness check: balanced, properly nested tags, one root. */
function checkXml(text: string): void {
  const body = text.replace(/<\?xml[^>]*\?>/, "").replace(/<!--[\s\S]*?-->/g, "");
  const stack: string[] = [];
  let roots = 0;
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const between = body.slice(last, m.index);
    if (/[<>]/.test(between)) throw new Error(`stray markup near ${JSON.stringify(between)}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) throw new Error("bad entity");
    last = re.lastIndex;
    const [, close, name, , selfClose] = m;
    if (close) {
      if (stack.pop() !== name) throw new Error(`unbalanced </${name}>`);
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
  }
  if (/[<>]/.test(body.slice(last))) throw new Error("stray markup at the end");
  if (stack.length > 0) throw new Error(`unclosed <${stack.join("><")}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
}

let registry: RunningRegistry;
let tmp: { path: string; remove(): Promise<void> };
let image: string;
let workload: string;
let blobSizes: Set<number>;

beforeAll(async () => {
  registry = await startRegistry();
  tmp = await makeTempDir("bench");
  const repo = { registry: registry.host, repository: "bench/small" };
  const layer1 = await makeTar([
    // A shell, for --run: Debian's busybox-static (installed by .ci/run).
    { name: "bin/" },
    { name: "bin/busybox", body: await readFile("/bin/busybox"), mode: 0o755 },
    { name: "bin/sh", type: "symlink", linkname: "busybox" },
    { name: "bin/cat", type: "symlink", linkname: "busybox" },
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: "usr/bin/app", body: pseudoRandom(300_000, 1) },
    { name: "usr/lib/" },
    { name: "usr/lib/libbig.so", body: pseudoRandom(3_000_000, 2) },
    { name: "usr/lib/libsmall.so", body: pseudoRandom(40_000, 3) },
    { name: "lib", type: "symlink", linkname: "usr/lib" },
    { name: "etc/" },
    { name: "etc/config", body: "old\n" },
    { name: "etc/gone", body: "deleted above\n" },
  ]);
  const layer2 = await makeTar([
    { name: "etc/" },
    { name: "etc/config", body: "new\n".repeat(1000) },
    { name: "etc/.wh.gone", body: "" },
    { name: "app/" },
    { name: "app/main.py", body: "print('hello')\n".repeat(500) },
    { name: "app/data.bin", body: pseudoRandom(2_000_000, 4) },
  ]);
  const client = new RegistryClient();
  try {
    const layers = [];
    for (const tar of [layer1, layer2]) {
      const gz = gzipSync(tar);
      const desc = { digest: sha(gz), size: gz.length };
      await pushBlob(client, repo, desc, gz);
      layers.push({ ...desc, diffID: sha(tar) });
    }
    blobSizes = new Set(layers.map((l) => l.size));
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
      }),
    );
    const configDesc = { digest: sha(config), size: config.length };
    await pushBlob(client, repo, configDesc, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configDesc },
        layers: layers.map((l) => ({
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: l.digest,
          size: l.size,
        })),
      }),
    );
    const ref = `${registry.host}/bench/small:v1`;
    await putManifest(
      client,
      parseReference(ref),
      manifest,
      "application/vnd.oci.image.manifest.v1+json",
    );
    image = `docker://${ref}`;
  } finally {
    await client.close();
  }
  workload = join(tmp.path, "workload-small.txt");
  await writeFile(
    workload,
    ["usr/bin/app", "lib/libsmall.so", "etc/config", "app/main.py", ""].join("\n"),
  );
});

afterAll(async () => {
  await registry?.stop();
  await tmp?.remove();
});

interface Row {
  strategy: string;
  label: string;
  link: { rttMs: number; mbit: number };
  verified: boolean;
  seconds: { median: number };
  readySeconds?: { median: number };
  bytesFetched: { median: number };
  requests: { median: number };
  runs: {
    seconds: number;
    requests: number;
    bytesFetched: number;
    readySeconds?: number;
    mountStats?: { requests: number; bytesFetched: number };
    requestsAtExit?: number;
  }[];
}

describe("seekable bench", () => {
  it("--run: the command started from a cold seekable mount, with and without its recorded profile, against a full pull", async () => {
    const r = await seekable(
      "bench",
      image,
      "--run",
      "cat /etc/config /app/main.py",
      "--rtt",
      "0",
      "--bandwidth",
      "0",
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const out = JSON.parse(r.stdout.toString()) as {
      workloads: { name: string; files: number; command?: string; lowerBound: number }[];
      strategies: string[];
      unavailable: { strategy: string; reason: string }[];
      rows: Row[];
    };
    expect(out.workloads[0].name).toBe("run1");
    expect(out.workloads[0].command).toBe("cat /etc/config /app/main.py");
    // busybox itself, /etc/config and /app/main.py
    expect(out.workloads[0].files).toBeGreaterThanOrEqual(3);
    // The profile strategy runs, or says why it cannot (a seekable without --prefetch).
    expect([...out.strategies, ...out.unavailable.map((u) => u.strategy)].sort()).toEqual([
      "cold-mount",
      "cold-mount-profile",
      "full-pull",
    ]);
    const by = Object.fromEntries(out.rows.map((x) => [x.strategy, x]));
    const full = by["full-pull"];
    const cold = by["cold-mount"];
    for (const x of out.rows) {
      expect(x.verified).toBe(true);
      expect(x.runs).toHaveLength(1);
      expect(x.requests.median).toBeGreaterThan(0);
    }
    // Manifest and the two layer blobs (the config is not needed to extract).
    expect(full.requests.median).toBeGreaterThanOrEqual(3);
    expect(full.bytesFetched.median).toBeGreaterThanOrEqual([...blobSizes].reduce((a, b) => a + b));
    // The mount leaves the 3 MB library and the 2 MB data file alone.
    expect(cold.bytesFetched.median).toBeLessThan(full.bytesFetched.median - 4_000_000);
    // The lower bound (TOCs and the opened files' members) sits between the two.
    const bound = out.workloads[0].lowerBound;
    expect(bound).toBeGreaterThan(0);
    expect(bound).toBeLessThan(full.bytesFetched.median - 4_000_000);
    expect((cold as Row & { boundRatio: number }).boundRatio).toBeCloseTo(
      cold.bytesFetched.median / bound,
      6,
    );
    // Every row is set against the physical limit (the full pull's warm rerun + 3 RTT + bound).
    for (const x of out.rows) {
      const r = x as Row & { limitRatio: number };
      expect(Number.isFinite(r.limitRatio)).toBe(true);
      expect(r.limitRatio).toBeGreaterThan(0);
    }
    for (const x of [cold, by["cold-mount-profile"]].filter(Boolean)) {
      const run = x.runs[0];
      // Process start to mount ready is part of the time, and comes first.
      expect(run.readySeconds).toBeGreaterThan(0);
      expect(run.readySeconds).toBeLessThan(run.seconds);
      // The mount talked to the registry through the shaping proxy only: what it counted
      // itself at exit is what crossed the proxy by then.
      expect(run.mountStats, JSON.stringify(run)).toBeDefined();
      expect(run.mountStats?.requests).toBe(run.requestsAtExit);
      expect(run.requests).toBeLessThanOrEqual(run.requestsAtExit as number);
    }
    const prof = by["cold-mount-profile"];
    if (prof) {
      // With the profile the files come in batches: no more requests than on demand.
      expect(prof.requests.median).toBeLessThanOrEqual(cold.requests.median);
      expect(prof.bytesFetched.median).toBeLessThan(full.bytesFetched.median);
    } else expect(out.unavailable[0].reason).toMatch(/--prefetch/);
  });

  it("path-list workloads: every strategy per link, files read through the mount, with a chart", async () => {
    const chart = join(tmp.path, "chart.svg");
    const r = await seekable(
      "bench",
      image,
      "--workload",
      workload,
      "--strategies",
      "full-pull,cold-mount,batched-list",
      "--rtt",
      "5,20",
      "--bandwidth",
      "200",
      "--repeat",
      "1",
      "--chart",
      chart,
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const doc = JSON.parse(r.stdout.toString("utf8"));
    expect(doc.converted).toBe(true);
    expect(doc.links).toHaveLength(2);
    expect(doc.rows).toHaveLength(2 * 3);
    for (const link of doc.links) {
      const rows: Row[] = doc.rows.filter((x: Row) => x.link.rttMs === link.rttMs);
      const by = Object.fromEntries(rows.map((x) => [x.strategy, x]));
      expect(Object.keys(by)).toEqual(["full-pull", "cold-mount", "batched-list"]);
      expect(by["batched-list"].label).toMatch(/not a real start/);
      expect(by["cold-mount"].bytesFetched.median).toBeLessThan(
        by["full-pull"].bytesFetched.median,
      );
      // Batched multi-range reads of a known list: fewer requests than reading on demand.
      expect(by["batched-list"].requests.median).toBeLessThanOrEqual(
        by["cold-mount"].requests.median,
      );
      for (const x of rows) {
        expect(x.verified).toBe(true);
        expect(x.runs).toHaveLength(1);
        expect(x.seconds.median).toBeGreaterThan(0);
        expect(x.requests.median).toBeGreaterThan(0);
      }
    }
    const svg = await readFile(chart, "utf8");
    checkXml(svg);
    const bars = [...svg.matchAll(/<rect class="bar" ([^>]*)>/g)].map((m) => m[1]);
    // batched-list is not a start: it is left out of the chart.
    expect(bars).toHaveLength(1 * 2 * 2);
    const keys = new Set(
      bars.map((b) =>
        ["workload", "strategy", "link"]
          .map((k) => new RegExp(`data-${k}="([^"]*)"`).exec(b)?.[1])
          .join("|"),
      ),
    );
    expect(keys.size).toBe(4);
    expect(svg).not.toContain("batched");
    expect(svg).toMatch(/time until the program exits \(s/);
    expect(svg).toContain("cold mount");
  });

  it("prints a Markdown table with the strategies' labels", async () => {
    const r = await seekable(
      "bench",
      image,
      "--workload",
      workload,
      "--strategies",
      "full-pull,cold-mount",
      "--rtt",
      "0",
      "--bandwidth",
      "0",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const text = r.stdout.toString("utf8");
    expect(text).toMatch(/not eStargz: converted first/);
    const lines = text.split("\n").filter((l) => l.startsWith("| small |"));
    expect(lines.map((l) => l.split("|")[3]?.trim())).toEqual([
      "full pull (download, extract, run)",
      "cold mount",
    ]);
    for (const l of lines) expect(l).toContain("sha256 ok");
    expect(text).toMatch(/\| × lower bound \|/);
    expect(text).toMatch(/lower bound \d/);
  });

  it("fails with one clear line when a response is corrupted", async () => {
    let proxy: FaultProxy | undefined;
    try {
      proxy = await startFaultProxy(registry.url);
      // Corrupt chunk reads (ranges that do not end at the blob's end, i.e. not the TOC tail).
      proxy.rule = (req) => {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
        if (!m || req.method !== "GET") return undefined;
        const end = Number(m[2]) + 1;
        return blobSizes.has(end) ? undefined : { kind: "corrupt", at: 20 };
      };
      const bad = image.replace(registry.host, proxy.host);
      const r = await seekable(
        "bench",
        bad,
        "--workload",
        workload,
        "--strategies",
        "full-pull,cold-mount",
        "--rtt",
        "0",
        "--bandwidth",
        "0",
      );
      expect(r.code, describeRun(r)).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines, describeRun(r)).toHaveLength(1);
      expect(lines[0]).toMatch(/^seekable: .*verification failed: cold-mount/);
      expect(lines[0]).toMatch(/digest|mismatch|corrupt|invalid/i);
    } finally {
      await proxy?.close();
    }
  });

  it("--as-is benches the unconverted image, its gzip layers read through `seekable index`", async () => {
    const ix = await seekable("index", image, "--min-layer-size", "0", "--span-size", "65536");
    expect(ix.code, describeRun(ix)).toBe(0);
    const r = await seekable(
      "bench",
      image,
      "--as-is",
      "--workload",
      workload,
      "--strategies",
      "full-pull,cold-mount",
      "--rtt",
      "0",
      "--bandwidth",
      "0",
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const doc = JSON.parse(r.stdout.toString("utf8"));
    expect(doc.converted).toBe(false);
    const by = Object.fromEntries(doc.rows.map((x: Row) => [x.strategy, x]));
    for (const x of Object.values(by) as Row[]) expect(x.verified).toBe(true);
    // The big files the workload does not read stay in the registry.
    expect(by["cold-mount"].bytesFetched.median).toBeLessThan(
      by["full-pull"].bytesFetched.median / 2,
    );
  });
});

describe("shaping proxy", () => {
  let upstream: Server;
  let proxy: ShapingProxy;
  const BIG = 2_000_000;
  const big = pseudoRandom(BIG, 9);

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const body = req.url === "/big" ? big : Buffer.from("ok");
      res.writeHead(200, { "content-length": body.length });
      res.end(body);
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const { port } = upstream.address() as AddressInfo;
    proxy = await startShapingProxy({ upstream: `http://127.0.0.1:${port}` });
  });
  afterAll(async () => {
    await proxy?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => upstream?.close(() => r()));
  });

  it("adds one RTT per request (and one per new connection)", async () => {
    proxy.link = { rttMs: 100, mbit: 0 };
    proxy.reset();
    const n = 5;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${proxy.url}/small`);
      expect(await res.text()).toBe("ok");
    }
    const ms = performance.now() - t0;
    expect(proxy.counters.requests).toBe(n);
    const rtts = n + proxy.counters.connections; // requests + handshakes
    expect(ms).toBeGreaterThanOrEqual(rtts * 100 * 0.97);
    expect(ms).toBeLessThan(rtts * 100 + 1500);
  });

  it("limits response bodies to the bandwidth", async () => {
    proxy.link = { rttMs: 0, mbit: 8 };
    const t0 = performance.now();
    const res = await fetch(`${proxy.url}/big`);
    const body = Buffer.from(await res.arrayBuffer());
    const s = (performance.now() - t0) / 1000;
    expect(body.equals(big)).toBe(true);
    // 2,000,000 bytes at 8 Mbit/s = 2.0 s.
    expect(s).toBeGreaterThanOrEqual(1.95);
    expect(s).toBeLessThan(4);
  });

  it("shares the bandwidth between connections", async () => {
    proxy.link = { rttMs: 0, mbit: 16 };
    const t0 = performance.now();
    await Promise.all(
      [0, 1].map(async () => {
        const res = await fetch(`${proxy.url}/big`, { headers: { "x-n": String(Math.random()) } });
        await res.arrayBuffer();
      }),
    );
    const s = (performance.now() - t0) / 1000;
    // 2 × 2,000,000 bytes at 16 Mbit/s = 2.0 s in all.
    expect(s).toBeGreaterThanOrEqual(1.95);
    expect(s).toBeLessThan(4);
  });
});
