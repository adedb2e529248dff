#!/usr/bin/env node
// Whole-image conversion benchmark: the real three-layer image of .work/image (made by
// `node tools/image/build-image.mjs`) gzipped into an OCI layout, put by skopeo into the
// Debian docker-registry on loopback, then `seekable convert docker://… docker://…`
// (layers streamed registry -> eStargz -> registry, --concurrency N). Compared with the same
// layers converted one by one from local .tar.gz files (`seekable convert FILE FILE`).
// Reports wall time and peak RSS of each.
//
// Usage: node bench/convert-image.mjs [--concurrency 2] [--json] [--keep]
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import {
  ensureSeekable,
  ensureTime,
  fmt,
  load,
  MiB,
  mdTable,
  parseArgs,
  ROOT,
  runTimed,
  SEEKABLE,
  WORK,
} from "./lib.mjs";

const opts = parseArgs(process.argv.slice(2), { concurrency: 2, json: false, keep: false });
ensureTime();
ensureSeekable();

const imageDir = join(WORK, "image");
const layerTars = [1, 2, 3].map((i) => join(imageDir, `layer${i}.tar`));
if (!layerTars.every(existsSync)) {
  const r = spawnSync(process.execPath, [join(ROOT, "tools/image/build-image.mjs")], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error("tools/image/build-image.mjs failed");
}

const dir = join(WORK, "bench-convert-image");
await rm(dir, { recursive: true, force: true });
const layout = join(dir, "layout");
await mkdir(join(layout, "blobs/sha256"), { recursive: true });

async function sha256File(path) {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return `sha256:${h.digest("hex")}`;
}
async function putBlob(path) {
  const digest = await sha256File(path);
  const target = join(layout, "blobs/sha256", digest.slice(7));
  await pipeline(createReadStream(path), createWriteStream(target));
  return { digest, size: (await stat(path)).size };
}

// 1. The source image: gzip layers, config, manifest in an OCI layout.
const gz = [];
const layers = [];
const diffIDs = [];
for (const [i, tar] of layerTars.entries()) {
  const out = join(dir, `layer${i + 1}.tar.gz`);
  await pipeline(createReadStream(tar), createGzip({ level: 6 }), createWriteStream(out));
  gz.push(out);
  const b = await putBlob(out);
  layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...b });
  diffIDs.push(await sha256File(tar));
}
const configPath = join(dir, "config.json");
await writeFile(
  configPath,
  JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/usr/bin/python3"] },
    rootfs: { type: "layers", diff_ids: diffIDs },
    history: layers.map((_, i) => ({ created_by: `layer ${i + 1}` })),
  }),
);
const config = await putBlob(configPath);
const manifestPath = join(dir, "manifest.json");
await writeFile(
  manifestPath,
  JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  }),
);
const manifest = await putBlob(manifestPath);
await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
await writeFile(
  join(layout, "index.json"),
  JSON.stringify({
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "v1" },
      },
    ],
  }),
);

// 2. A registry on loopback.
const port = await new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const regDir = join(dir, "registry");
await mkdir(regDir, { recursive: true });
await writeFile(
  join(regDir, "config.yml"),
  JSON.stringify({
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(regDir, "data") }, redirect: { disable: true } },
    http: { addr: `127.0.0.1:${port}`, secret: "bench" },
  }),
);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")),
);
const registry = spawn("docker-registry", ["serve", join(regDir, "config.yml")], {
  env,
  stdio: "ignore",
});
const host = `127.0.0.1:${port}`;
try {
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 200) throw new Error("docker-registry did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const copy = spawnSync(
    "skopeo",
    [
      "--insecure-policy",
      "copy",
      "--dest-tls-verify=false",
      `oci:${layout}:v1`,
      `docker://${host}/bench/src:v1`,
    ],
    { encoding: "utf8" },
  );
  if (copy.status !== 0) throw new Error(`skopeo copy failed: ${copy.stderr}`);

  // 3. Whole image, registry to registry.
  const image = await runTimed(process.execPath, [
    SEEKABLE,
    "convert",
    `docker://${host}/bench/src:v1`,
    `docker://${host}/bench/out:v1`,
    "--concurrency",
    String(opts.concurrency),
    "--json",
  ]);
  const report = JSON.parse(image.stdout);

  // 4. The same layers one by one from local files.
  let filesWall = 0;
  let filesRss = 0;
  const fileDigests = [];
  for (const [i, f] of gz.entries()) {
    const r = await runTimed(process.execPath, [
      SEEKABLE,
      "convert",
      f,
      join(dir, `layer${i + 1}.esgz`),
      "--json",
    ]);
    filesWall += r.wall;
    filesRss = Math.max(filesRss, r.rssMiB);
    fileDigests.push(JSON.parse(r.stdout).digest);
  }
  const same = JSON.stringify(fileDigests) === JSON.stringify(report.layers.map((l) => l.digest));
  const inputMiB =
    (await Promise.all(gz.map((f) => stat(f)))).reduce((a, s) => a + s.size, 0) / MiB;
  const tarMiB =
    (await Promise.all(layerTars.map((t) => stat(t)))).reduce((a, s) => a + s.size, 0) / MiB;
  const result = {
    layers: gz.length,
    inputGzipMiB: Number(fmt(inputMiB)),
    uncompressedMiB: Number(fmt(tarMiB)),
    concurrency: opts.concurrency,
    image: {
      wallS: Number(fmt(image.wall, 2)),
      peakRssMiB: Number(fmt(image.rssMiB)),
      cpuS: Number(fmt(image.cpu, 2)),
    },
    filesOneByOne: { wallS: Number(fmt(filesWall, 2)), peakRssMiB: Number(fmt(filesRss)) },
    sameLayerDigests: same,
    manifest: report.manifest,
    load: load(),
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `${mdTable(
        ["run", "wall s", "peak RSS MiB"],
        [
          [
            `image registry->registry (--concurrency ${opts.concurrency})`,
            fmt(image.wall, 2),
            fmt(image.rssMiB),
          ],
          ["layers one by one, local files", fmt(filesWall, 2), fmt(filesRss)],
        ],
      )}\n\n${gz.length} layers, ${fmt(inputMiB)} MiB gzip in, ${fmt(tarMiB)} MiB uncompressed; same layer digests: ${same}; load ${result.load}\n`,
    );
  }
} finally {
  registry.kill("SIGTERM");
  if (!opts.keep) await rm(dir, { recursive: true, force: true });
}
