#!/usr/bin/env node
// The product in under a minute, with nothing but `npm ci`: a three-layer image made from files
// at hand (this machine's `node` binary; TypeScript's package from node_modules, which the
// start never reads; an app of this repository's sources), converted to
// eStargz as a whole image, served over HTTP by `seekable serve`, then read lazily: a listing,
// one file, and — where FUSE is available (root, /dev/fuse, libfuse2) — `node` started from a
// `seekable mount` of it. Each step prints the bytes it fetched against the image's size.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages/cli/dist/main.js");
const work = join(root, ".work/quickstart");
const MiB = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const say = (line) => process.stdout.write(`${line}\n`);

/** `seekable ARGS`: stdout, stderr; throws with its stderr on failure. */
function seekable(...args) {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      err += d;
    });
    p.on("exit", (code) =>
      code === 0 ? res({ out, err }) : rej(new Error(`seekable ${args[0]}: ${err.trim()}`)),
    );
  });
}

/** The `--stats` line a reading command printed on stderr. */
const statsOf = (err) =>
  JSON.parse(
    err
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .pop(),
  );

const sha256 = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A plain tar.gz layer of `dir` (GNU tar, reproducible). */
function layerOf(dir) {
  const tar = execFileSync(
    "tar",
    [
      "-c",
      "-C",
      dir,
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mtime=2024-01-01",
      ".",
    ],
    { maxBuffer: 1 << 30 },
  );
  return { tar, gz: gzipSync(tar, { level: 6 }) };
}

/** An OCI image layout at `dir` holding `layers` (tar.gz) as `quickstart:v1`. */
async function writeLayout(dir, layers) {
  const blobs = join(dir, "blobs/sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (b) => {
    const d = sha256(b);
    await writeFile(join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/usr/local/bin/node", "/app/hello.js"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l.tar)) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...(await put(config)) },
      layers: await Promise.all(
        layers.map(async (l) => ({
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          ...(await put(l.gz)),
        })),
      ),
    }),
  );
  const m = await put(manifest);
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...m,
          annotations: { "org.opencontainers.image.ref.name": "v1" },
        },
      ],
    }),
  );
}

async function main() {
  const t0 = performance.now();
  await rm(work, { recursive: true, force: true });
  // Layer 0: the node binary; 1: a library the start does not use; 2: an app of this
  // repository's sources.
  const base = join(work, "rootfs-0");
  const lib = join(work, "rootfs-1");
  const app = join(work, "rootfs-2");
  await mkdir(join(base, "usr/local/bin"), { recursive: true });
  await copyFile(process.execPath, join(base, "usr/local/bin/node"));
  await mkdir(join(lib, "usr/local/lib/node_modules"), { recursive: true });
  execFileSync("cp", [
    "-r",
    join(root, "node_modules/typescript"),
    join(lib, "usr/local/lib/node_modules/"),
  ]);
  await mkdir(join(app, "app"), { recursive: true });
  for (const pkg of await readdir(join(root, "packages"))) {
    const src = join(root, "packages", pkg, "src");
    if (existsSync(src)) execFileSync("cp", ["-r", src, join(app, "app", pkg)]);
  }
  await copyFile(join(root, "README.md"), join(app, "app/README.md"));
  await writeFile(
    join(app, "app/hello.js"),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the app's own source text
    "console.log(`hello from node ${process.version}, started from a lazily mounted image`);\n",
  );
  const layers = [layerOf(base), layerOf(lib), layerOf(app)];
  const plain = join(work, "plain");
  await writeLayout(plain, layers);
  const plainSize = layers.reduce((a, l) => a + l.gz.length, 0);
  say(
    `== an image of 3 layers (the node binary; the typescript package; an app): ${MiB(plainSize)} as tar.gz, in oci:${plain}`,
  );

  const converted = join(work, "estargz");
  say(`== seekable convert oci:${plain}:v1 oci:${converted}:v1`);
  await seekable("convert", `oci:${plain}:v1`, `oci:${converted}:v1`);
  let imageSize = 0;
  for (const f of await readdir(join(converted, "blobs/sha256")))
    imageSize += (await stat(join(converted, "blobs/sha256", f))).size;
  say(
    `   eStargz image: ${MiB(imageSize)} (every file chunk its own gzip member, a TOC, a footer)`,
  );

  say(`== seekable serve oci:${converted} (a registry on loopback, Range requests)`);
  const server = spawn(process.execPath, [cli, "serve", `oci:${converted}`, "--json"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((res, rej) => {
    server.stdout.once("data", (d) => res(JSON.parse(String(d)).address));
    server.once("exit", (c) => rej(new Error(`seekable serve exited with ${c}`)));
  });
  const image = `docker://${url}/quickstart:v1`;
  try {
    say(`== seekable ls ${image} app (only the TOCs travel)`);
    const ls = await seekable("ls", image, "app", "--stats", "--no-cache");
    say(ls.out.trim().split("\n").slice(0, 6).join("\n"));
    const lsStats = statsOf(ls.err);
    say(
      `   ${lsStats.requests} requests, ${MiB(lsStats.bytesFetched)} fetched of ${MiB(imageSize)}`,
    );

    say(`== seekable cat ${image} app/hello.js`);
    const cat = await seekable("cat", image, "app/hello.js", "--stats", "--no-cache");
    process.stdout.write(cat.out);
    const catStats = statsOf(cat.err);
    say(
      `   ${catStats.requests} requests, ${MiB(catStats.bytesFetched)} fetched of ${MiB(imageSize)}`,
    );

    const fuse = process.getuid?.() === 0 && existsSync("/dev/fuse");
    if (!fuse) {
      say(
        "== (no FUSE here: run as root on a machine with /dev/fuse and libfuse2 to start a program from `seekable mount`)",
      );
    } else {
      const mnt = join(work, "mnt");
      await mkdir(mnt, { recursive: true });
      say(`== seekable mount ${image} ${mnt}, then ${mnt}/usr/local/bin/node ${mnt}/app/hello.js`);
      const m = spawn(process.execPath, [cli, "mount", image, mnt, "--stats", "--no-cache"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      m.stderr.on("data", (d) => {
        err += d;
      });
      const up = await new Promise((res) => {
        m.stdout.once("data", () => res(true));
        m.once("exit", () => res(false));
      });
      if (!up) {
        say(`   the mount did not come up: ${err.trim()}`);
      } else {
        try {
          const out = execFileSync(join(mnt, "usr/local/bin/node"), [join(mnt, "app/hello.js")], {
            encoding: "utf8",
          });
          process.stdout.write(`   ${out}`);
        } finally {
          m.kill("SIGTERM");
          await new Promise((r) => m.once("exit", r));
        }
        const s = statsOf(err);
        say(
          `   ${s.requests} requests, ${MiB(s.bytesFetched)} fetched of ${MiB(imageSize)} (${((100 * s.bytesFetched) / imageSize).toFixed(0)}%): the rest of the image never travelled`,
        );
      }
    }
  } finally {
    server.kill("SIGTERM");
  }
  say(`== done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  process.stderr.write(`quickstart: ${e.message}\n`);
  process.exit(1);
});
