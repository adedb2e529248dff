#!/usr/bin/env node
// The image `seekable bench` is measured on, reproducibly:
//   1. tools/image/build-image.mjs (cached) builds the real three-layer python image
//      (.work/image/layer{1,2,3}.tar) and its workload .work/image/workload-python-json.txt;
//      with --node-app, the node variant (.work/image-node: same base and python layers, a
//      node app layer of ~22k entries: express and its neighbours, this machine's node);
//   2. this script writes it as a plain OCI image layout (tar+gzip layers, gzip level 6, as
//      `docker build` would push it) in .work/bench/python-oci (node: node-oci), tag
//      "latest" (cached);
//   3. --push docker://REF converts it to eStargz with `seekable convert` into a registry;
//      --bench ARGS... starts a Debian docker-registry on loopback, pushes the eStargz image
//      to it as bench/python:estargz (bench/node:estargz) and runs
//      `seekable bench docker://… ARGS...` against it, with the reference lazy store
//      (tools/reference-store/build.sh, built offline once) unless --no-reference-store.
//      With --unconverted: the plain gzip image is pushed as it is (skopeo copy: the same
//      layer digests) as bench/NAME:gzip, indexed with `seekable index`, and benched so:
//      the cost of not converting (issue 17). --index-span BYTES: its span size.
//
// Usage:
//   node tools/bench-image.mjs                       # just the OCI layout (oci:.work/bench/python-oci:latest)
//   node tools/bench-image.mjs --push docker://127.0.0.1:5000/bench/python:estargz
//   node tools/bench-image.mjs --bench --run 'python3 -c "import json"' \
//        --rtt 50 --bandwidth 100 --repeat 3 --chart bench/results/coldstart.svg
//   node tools/bench-image.mjs --node-app --bench --run 'cd /app && node -e "require(\'express\')"' \
//        --rtt 50 --bandwidth 100 --repeat 3
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { startRegistry } from "../bench/lib.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SEEKABLE = join(ROOT, "packages/cli/dist/main.js");
const log = (s) => process.stderr.write(`bench-image: ${s}\n`);

const args = process.argv.slice(2);
const benchAt = args.indexOf("--bench");
const benchArgs = benchAt >= 0 ? args.slice(benchAt + 1) : undefined;
const own = benchAt >= 0 ? args.slice(0, benchAt) : args;
const pushAt = own.indexOf("--push");
const pushRef = pushAt >= 0 ? own[pushAt + 1] : undefined;
const nodeApp = own.includes("--node-app");
const withReference = !own.includes("--no-reference-store");
const unconverted = own.includes("--unconverted");
const spanAt = own.indexOf("--index-span");
const indexSpan = spanAt >= 0 ? ["--span-size", own[spanAt + 1]] : [];
const NAME = nodeApp ? "node" : "python";
const IMAGE_DIR = join(ROOT, nodeApp ? ".work/image-node" : ".work/image");
const LAYOUT = join(ROOT, `.work/bench/${NAME}-oci`);
const CMD = nodeApp
  ? ["/bin/sh", "-c", "cd /app && node server.js"]
  : ["/usr/bin/python3", "-c", "import json"];
const STORE_BUILD = join(ROOT, "tools/reference-store/build.sh");
const STORE_BIN = join(ROOT, "tools/reference-store/bin/stargz-store");

const sh = (cmd, argv, opts = {}) => {
  const r = spawnSync(cmd, argv, { stdio: "inherit", ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.slice(0, 3).join(" ")}… exited ${r.status}`);
};

async function writeLayout() {
  if (existsSync(join(LAYOUT, "index.json"))) return;
  const tmp = `${LAYOUT}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, "blobs/sha256"), { recursive: true });
  const info = JSON.parse(readFileSync(join(IMAGE_DIR, "image.json"), "utf8"));
  const layers = [];
  for (const l of info) {
    log(`compressing ${l.tar}`);
    const hash = createHash("sha256");
    let size = 0;
    const part = join(tmp, "blobs/sha256/.layer");
    await pipeline(
      createReadStream(l.tar),
      createGzip({ level: 6 }),
      new Transform({
        transform(chunk, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      }),
      createWriteStream(part),
    );
    const hex = hash.digest("hex");
    await rename(part, join(tmp, "blobs/sha256", hex));
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: `sha256:${hex}`,
      size,
    });
  }
  const blob = async (bytes) => {
    const hex = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(tmp, "blobs/sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const config = await blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Cmd: CMD },
        rootfs: { type: "layers", diff_ids: info.map((l) => l.diffID) },
      }),
    ),
  );
  const manifest = await blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers,
      }),
    ),
  );
  await writeFile(join(tmp, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(tmp, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
        },
      ],
    }),
  );
  await rm(LAYOUT, { recursive: true, force: true });
  await rename(tmp, LAYOUT);
  log(`wrote oci:${LAYOUT}:latest`);
}

sh(process.execPath, [
  join(ROOT, "tools/image/build-image.mjs"),
  ...(nodeApp ? ["--node-app"] : []),
]);
await writeLayout();
if (pushRef) {
  log(`converting to eStargz and pushing to ${pushRef}`);
  sh(process.execPath, [SEEKABLE, "convert", `oci:${LAYOUT}:latest`, pushRef]);
}
if (benchArgs) {
  const extra = [];
  if (withReference) {
    log("building the reference lazy store (tools/reference-store/build.sh; offline, cached)");
    sh(STORE_BUILD, []);
    extra.push("--reference-store", STORE_BIN);
  }
  const registry = await startRegistry();
  try {
    const ref = `docker://${registry.host}/bench/${NAME}:${unconverted ? "gzip" : "estargz"}`;
    if (unconverted) {
      log(`pushing the unconverted image to ${ref} and indexing it`);
      sh("skopeo", ["copy", "--dest-tls-verify=false", `oci:${LAYOUT}:latest`, ref], {
        stdio: ["ignore", 2, 2],
      });
      sh(process.execPath, [SEEKABLE, "index", ref, ...indexSpan], { stdio: ["ignore", 2, 2] });
    } else {
      log(`converting to eStargz and pushing to ${ref}`);
      sh(process.execPath, [SEEKABLE, "convert", `oci:${LAYOUT}:latest`, ref], {
        stdio: ["ignore", 2, 2],
      });
    }
    log(`seekable bench ${ref} ${[...extra, ...benchArgs].join(" ")}`);
    if (unconverted) extra.push("--as-is");
    sh(process.execPath, [SEEKABLE, "bench", ref, ...extra, ...benchArgs], { cwd: ROOT });
  } finally {
    await registry.stop();
  }
}
