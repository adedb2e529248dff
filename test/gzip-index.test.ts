// `seekable index` (issue 17) against the real Debian docker-registry: a plain three-layer
// gzip image is indexed (two layers over the size threshold, one under), the indexes pushed
// beside it as a referrer (this registry has no referrers API: the tag fallback), and the
// image read lazily through them by `ls` and `cat`: the manifest digest unchanged, every file
// equal to the original, a few files costing a fraction of the layers. A mismatched index
// is one warning and the layer read whole; `--index none` reads every layer whole. A real
// FUSE mount (root) serves every file through the indexes too.

import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseGzipIndex, serializeGzipIndex } from "@seekable/format";
import {
  addReferrer,
  digestOf,
  fetchBlob,
  getManifest,
  parseReference,
  pushBlob,
  putManifest,
  RegistryClient,
} from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamicProgram } from "./helpers/dynamic-program.js";
import { makeTempDir } from "./helpers/files.js";
import { startForeground } from "./helpers/foreground.js";
import { pushImage } from "./helpers/push-image.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, jsonOut, run, seekable, statsOf } from "./helpers/run.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./helpers/tar.js";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Source-like text: compressible, different in every file. */
function text(n: number, seed: number): Buffer {
  const words = ["import os", "def main():", "return None", "self.value", "class Thing:"];
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const w = `${words[(i * 7 + seed) % words.length]} # ${seed}.${i}\n`;
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

const files = new Map<string, Buffer>();
function layerItems(prefix: string, count: number, seed: number): TarItem[] {
  const items: TarItem[] = [{ name: `${prefix}/` }];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}/m${i}.py`;
    const body =
      i % 7 === 0
        ? pseudoRandom(30_000 + i * 500, seed + i)
        : text(2_000 + ((i * 3001) % 60_000), seed + i);
    files.set(name, body);
    items.push({ name, body });
  }
  return items;
}

let registry: RunningRegistry;
let ref: string;
let manifestDigest: string;
const layers: { digest: string; size: number; data: Buffer }[] = [];
const repo = { registry: "", repository: "gz/plain" };

beforeAll(async () => {
  registry = await startRegistry();
  repo.registry = registry.host;
  const big = mkBig();
  const tars = [
    await makeTar([...layerItems("usr/lib", 150, 1), ...big]),
    await makeTar(layerItems("app", 120, 2)),
    await makeTar([{ name: "etc/" }, { name: "etc/motd", body: "small layer\n" }]),
  ];
  files.set("etc/motd", Buffer.from("small layer\n"));
  const client = new RegistryClient();
  try {
    for (const t of tars) {
      const data = gzipSync(t, { level: 6 });
      layers.push({ digest: sha(data), size: data.length, data });
    }
    const r = await pushImage(
      client,
      repo,
      "v1",
      layers.map((l) => ({ blob: l.data })),
    );
    manifestDigest = (await getManifest(client, parseReference(r))).digest;
    ref = `docker://${r}`;
  } finally {
    await client.close();
  }
}, 120_000);

function mkBig(): TarItem[] {
  const body = text(5_000_000, 99);
  files.set("usr/lib/big.so", body);
  return [{ name: "usr/lib/big.so", body }];
}

afterAll(async () => {
  await registry?.stop();
});

const common = ["--no-cache", "--stats"];

/** A real FUSE mount of `image` at `tmp/name`, without a cache (needs root and /dev/fuse). */
async function mountAt(tmp: string, name: string, image: string, extra: string[] = []) {
  if (process.getuid?.() !== 0 || !existsSync("/dev/fuse"))
    throw new Error("cannot test a real FUSE mount: needs root and /dev/fuse");
  const mnt = join(tmp, name);
  await mkdir(mnt);
  return { mnt, fg: await startForeground("mount", ["mount", image, mnt, ...common, ...extra]) };
}

describe("seekable index", () => {
  let indexed: {
    digest: string;
    indexed: { layer: string; checkpoints: number }[];
    skipped: { layer: string }[];
  };

  beforeAll(async () => {
    const r = await seekable(
      "index",
      ref,
      "--span-size",
      "65536",
      "--min-layer-size",
      "100000",
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    indexed = jsonOut(r);
  }, 120_000);

  it("indexes the gzip layers over the threshold and leaves the image as it is", async () => {
    expect(indexed.indexed.map((l) => l.layer)).toEqual([layers[0].digest, layers[1].digest]);
    expect(indexed.skipped.map((l) => l.layer)).toEqual([layers[2].digest]);
    for (const l of indexed.indexed) expect(l.checkpoints).toBeGreaterThan(3);
    const client = new RegistryClient();
    try {
      const m = await getManifest(client, parseReference(ref.slice("docker://".length)));
      expect(m.digest).toBe(manifestDigest);
      const art = await getManifest(client, { ...repo, digest: indexed.digest });
      expect(art.json.subject?.digest).toBe(manifestDigest);
      // Each index names its layer; beside its windows (32 KiB a checkpoint, incompressible
      // where the data is) its metadata is small. At the default 4 MiB span bench/index.mjs
      // measures ~1.3% of the layers in all.
      for (const d of art.json.layers ?? []) {
        const ix = parseGzipIndex(await fetchBlob(client, repo, d.digest));
        const layer = layers.find((l) => l.digest === ix.layer.digest);
        expect(layer?.size).toBe(ix.layer.size);
        expect(d.size).toBeLessThan(ix.checkpoints.length * 32 * 1024 + (layer?.size ?? 0) * 0.05);
      }
    } finally {
      await client.close();
    }
  });

  it("ls and cat read through the indexes: every file equals the original", async () => {
    const ls = await seekable("ls", ref, ...common);
    expect(ls.code, describeRun(ls)).toBe(0);
    for (const name of files.keys()) expect(ls.stdout.toString()).toContain(name);
    const names = [...files.keys()];
    const cat = await seekable("cat", ref, ...names, ...common);
    expect(cat.code, describeRun(cat)).toBe(0);
    let at = 0;
    for (const name of names) {
      const want = files.get(name) as Buffer;
      expect(sha(cat.stdout.subarray(at, at + want.length)), name).toBe(sha(want));
      at += want.length;
    }
    expect(at).toBe(cat.stdout.length);
    const s = statsOf(cat.stderr);
    expect(s.layersIndexed).toBe(2);
    expect(s.layersStreamedWhole).toBe(1);
  });

  it("a few files cost a fraction of the layers", async () => {
    const cat = await seekable("cat", ref, "usr/lib/m3.py", "app/m5.py", ...common);
    expect(cat.code, describeRun(cat)).toBe(0);
    expect(
      cat.stdout.equals(
        Buffer.concat([files.get("usr/lib/m3.py") as Buffer, files.get("app/m5.py") as Buffer]),
      ),
    ).toBe(true);
    const s = statsOf(cat.stderr);
    const indexedBytes = layers[0].size + layers[1].size;
    // The small layer is fetched whole; the two indexed ones a span or two each.
    expect(s.bytesFetched - layers[2].size).toBeLessThan(indexedBytes * 0.3);
  });

  it("--index none reads every layer whole", async () => {
    const cat = await seekable("cat", ref, "usr/lib/m3.py", "--index", "none", ...common);
    expect(cat.code, describeRun(cat)).toBe(0);
    expect(cat.stdout.equals(files.get("usr/lib/m3.py") as Buffer)).toBe(true);
    const s = statsOf(cat.stderr);
    expect(s.layersIndexed).toBe(0);
    expect(s.layersStreamedWhole).toBe(3);
  });

  it("an index that does not match its layer is one warning and the layer read whole", async () => {
    const client = new RegistryClient();
    let bad: string;
    try {
      const art = await getManifest(client, { ...repo, digest: indexed.digest });
      const first = (art.json.layers ?? [])[0];
      const ix = parseGzipIndex(await fetchBlob(client, repo, first.digest));
      const wrong = serializeGzipIndex({ ...ix, layer: { ...ix.layer, size: ix.layer.size + 1 } });
      const d = { digest: digestOf(wrong), size: wrong.length };
      await pushBlob(client, repo, d, wrong);
      const body = Buffer.from(
        JSON.stringify({
          ...art.json,
          layers: [{ ...first, ...d }, ...(art.json.layers ?? []).slice(1)],
          annotations: { "org.opencontainers.image.created": "2030-01-01T00:00:00Z" },
        }),
      );
      bad = await putManifest(client, { ...repo, digest: digestOf(body) }, body, OCI_MANIFEST);
      await addReferrer(client, repo, manifestDigest, {
        mediaType: OCI_MANIFEST,
        digest: bad,
        size: body.length,
        artifactType: "application/vnd.seekable.gzip-index.v1",
        annotations: { "org.opencontainers.image.created": "2030-01-01T00:00:00Z" },
      });
    } finally {
      await client.close();
    }
    const cat = await seekable(
      "cat",
      ref,
      "usr/lib/m3.py",
      "app/m5.py",
      "--index-digest",
      bad,
      ...common,
    );
    expect(cat.code, describeRun(cat)).toBe(0);
    expect(
      cat.stdout.equals(
        Buffer.concat([files.get("usr/lib/m3.py") as Buffer, files.get("app/m5.py") as Buffer]),
      ),
    ).toBe(true);
    const warnings = cat.stderr.split("\n").filter((l) => l.includes("warning"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/bytes, not .*read whole/);
    const s = statsOf(cat.stderr);
    expect(s.layersIndexed).toBe(1);
    expect(s.layersStreamedWhole).toBe(2);
  });

  it("a FUSE mount serves every file through the indexes", async () => {
    const tmp = await makeTempDir("gzindex-mount");
    // Pinned: the test before pushed a newer, mismatched index artifact.
    const { mnt, fg } = await mountAt(tmp.path, "mnt", ref, ["--index-digest", indexed.digest]);
    try {
      for (const [name, body] of files) {
        const got = await readFile(join(mnt, name));
        expect(sha(got), name).toBe(sha(body));
      }
    } finally {
      expect(await fg.stop()).toBe(0);
      await tmp.remove();
    }
    const s = statsOf(fg.stderr());
    expect(s.layersIndexed).toBe(2);
  });

  it("a FUSE mount reads each indexed byte once, and prefetches a profile in one batched read", async () => {
    const tmp = await makeTempDir("gzindex-profile");
    const app = [...files.keys()].filter((n) => n.startsWith("app/"));
    const profile = join(tmp.path, "profile.txt");
    await writeFile(profile, `${app.join("\n")}\n`);
    let mounts = 0;
    const readAll = async (names: string[], extra: string[] = []) => {
      const { mnt, fg } = await mountAt(tmp.path, `mnt${mounts++}`, ref, [
        "--index-digest",
        indexed.digest,
        ...extra,
      ]);
      try {
        if (extra.length > 0) {
          // The prefetch is done when the mount says so (one line on stderr).
          for (let i = 0; i < 400 && !fg.stderr().includes("prefetched"); i++)
            await new Promise((r) => setTimeout(r, 50));
          expect(fg.stderr()).toMatch(/prefetched 120 files/);
        }
        for (const name of names)
          expect(sha(await readFile(join(mnt, name))), name).toBe(sha(files.get(name) as Buffer));
      } finally {
        expect(await fg.stop()).toBe(0);
      }
      return statsOf(fg.stderr());
    };
    try {
      // What a mount costs before any read: manifest, config, the indexes, the small layer.
      const base = await readAll([]);
      const plain = await readAll(app);
      const prefetched = await readAll(app, ["--prefetch", profile]);
      const spans = indexed.indexed[1].checkpoints;
      // A span's other files are kept (in memory and the run's own cache) and a later read in a span
      // fetches only what lies past the bytes fetched before: no compressed byte of the layer
      // twice (but the byte a checkpoint in mid-byte shares with the span before it).
      expect(plain.requests - base.requests).toBeLessThan(app.length);
      expect(plain.bytesFetched - base.bytesFetched).toBeLessThanOrEqual(layers[1].size + spans);
      // The profile's files in one batched read (one source.read of the spans, coalesced).
      expect(
        prefetched.requests - base.requests,
        JSON.stringify({ base, prefetched }),
      ).toBeLessThanOrEqual(2);
      expect(prefetched.bytesFetched).toBeLessThanOrEqual(plain.bytesFetched);
    } finally {
      await tmp.remove();
    }
  });

  it("a FUSE mount starts a program from indexed layers, fetching what the loader opens ahead of it", async () => {
    const { base, app, libs } = dynamicProgram();
    const client = new RegistryClient();
    let elfRef: string;
    try {
      const blobs = [gzipSync(await makeTar(base)), gzipSync(await makeTar(app))];
      elfRef = `docker://${await pushImage(
        client,
        { ...repo, repository: "gz/elf" },
        "v1",
        blobs.map((blob) => ({ blob })),
      )}`;
    } finally {
      await client.close();
    }
    // Spans small beside the files (150 KB fillers between the libraries): each file a span.
    const ix = await seekable(
      "index",
      elfRef,
      "--span-size",
      "65536",
      "--min-layer-size",
      "1000",
      "--json",
    );
    expect(ix.code, describeRun(ix)).toBe(0);
    expect(jsonOut<{ indexed: unknown[] }>(ix).indexed).toHaveLength(2);
    const tmp = await makeTempDir("gzindex-elf");
    try {
      // What opening the image costs, to count the reads alone.
      const idle = await mountAt(tmp.path, "idle", elfRef);
      expect(await idle.fg.stop()).toBe(0);
      const opening = statsOf(idle.fg.stderr()).requests;
      expect(statsOf(idle.fg.stderr()).layersIndexed).toBe(2);

      const m = await mountAt(tmp.path, "run", elfRef);
      try {
        const r = await run("chroot", [m.mnt, "/usr/bin/ls", "/usr/bin"]);
        expect(r.code, describeRun(r)).toBe(0);
        expect(r.stdout.toString()).toBe("ls\n");
      } finally {
        expect(await m.fg.stop()).toBe(0);
      }
      // On demand, each file the loader opens is a round trip of its own: ls, ld.so,
      // ld.so.cache and every library. Ahead of it, as on eStargz layers: ls, then one
      // batched read per layer for ld.so, the cache and ls's libraries, then their dependencies.
      const reads = statsOf(m.fg.stderr()).requests - opening;
      expect(reads).toBeLessThanOrEqual(4);
      expect(reads).toBeLessThan(3 + libs.length);
    } finally {
      await tmp.remove();
    }
  });
});
