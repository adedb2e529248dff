// `seekable snapshotter` and `seekable pull` with real components: Debian's containerd 1.6
// (its own root, state and sockets), runc, the real registry behind a fault proxy, real FUSE
// and overlayfs. eStargz layers are committed by the snapshotter without a blob download and
// read lazily; a plain gzip layer on top is unpacked by containerd; the state survives kill -9
// and a containerd restart; image removal + GC leaves nothing; a registry failure is EIO.

import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Containerd } from "./helpers/containerd.js";
import { describeRun, jsonOut, seekable } from "./helpers/run.js";
import { BIG, type SnapshotterEnv, snapshotterEnv } from "./helpers/snapshotter-env.js";

let env: SnapshotterEnv;
/** Names through the fault proxy: the bytes the snapshotter fetches are counted there. */
let lazyImage: string;
let mixedImage: string;

const ctd = () => env.containerd as Containerd;
const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");

const ctrRun = (image: string, id: string, ...cmd: string[]) =>
  ctd().run("default", image, id, ...cmd);

beforeAll(async () => {
  env = await snapshotterEnv("seekable/snap", {});
  lazyImage = await env.push("esgz", env.layers);
  mixedImage = await env.push("mixed", [env.layers[0], env.layers[1], env.plainApp]);
}, 600_000);

afterAll(async () => {
  if (!env) return;
  for (const img of [lazyImage, mixedImage]) {
    await env.containerd?.ctr("default", "images", "rm", "--sync", img).catch(() => {});
  }
  await env.close();
});

describe("seekable snapshotter with containerd", () => {
  it("seekable pull commits every eStargz layer without downloading it; ctr run starts python3 from it", async () => {
    const from = env.proxy.log.length;
    const r = await seekable(
      "pull",
      "--containerd",
      ctd().socket,
      `docker://${lazyImage}`,
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const pulled = jsonOut<{ name: string; layers: { digest: string; kind: string }[] }>(r);
    expect(pulled.layers.map((l) => l.kind)).toEqual(["lazy", "lazy", "lazy"]);
    // Only footers and TOCs were read at pull.
    const total = env.layers.reduce((n, l) => n + l.blob.length, 0);
    expect(env.layerBytes(from, env.layers)).toBeLessThan(total * 0.05);

    const ls = await ctd().ctr("default", "images", "ls", "-q");
    expect(ls.stdout.toString().split("\n")).toContain(lazyImage);

    const before = env.proxy.log.length;
    const run = await ctrRun(
      lazyImage,
      "py1",
      "python3",
      "-c",
      "import json; print(json.dumps([1]))",
    );
    expect(run.code, `${describeRun(run)}\n${env.snapshotter?.stderr()}`).toBe(0);
    expect(run.stdout.toString()).toBe("[1]\n");
    // The start read a part of the image, lazily.
    const read = env.layerBytes(before, env.layers);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(total * 0.5);
  });

  it("an image with a plain gzip layer on eStargz ones: that layer is downloaded and unpacked by containerd, the others lazy", async () => {
    const from = env.proxy.log.length;
    const r = await seekable(
      "pull",
      "--containerd",
      ctd().socket,
      `docker://${mixedImage}`,
      "--json",
    );
    expect(r.code, describeRun(r)).toBe(0);
    const pulled = jsonOut<{ layers: { kind: string }[] }>(r);
    // The two lower layers are the lazy image's: already committed.
    expect(pulled.layers.map((l) => l.kind)).toEqual(["present", "present", "unpacked"]);
    expect(env.layerBytes(from, [env.plainApp])).toBe(env.plainApp.blob.length);
    const run = await ctrRun(
      mixedImage,
      "mixed1",
      "sh",
      "-c",
      // One write at the end: ctr may drop output written just before the task exits.
      'echo "$(python3 /app/main.py) $(cat /app/plain.txt) $(busybox md5sum /app/big.bin)"',
    );
    expect(run.code, describeRun(run)).toBe(0);
    expect(run.stdout.toString()).toBe(`{"ok": true} plain gzip layer ${md5(BIG)}  /app/big.bin\n`);
  });

  it("after kill -9 of the snapshotter and a containerd restart, the images are listed and a container starts again", async () => {
    const s = env.snapshotter as NonNullable<SnapshotterEnv["snapshotter"]>;
    s.proc.kill("SIGKILL");
    await s.exited;
    // As a node's service manager orders them: the snapshotter up before containerd dials it.
    const again = await env.startSnapshotter();
    expect(again.stderr()).toMatch(/cleared a stale mount/);
    await ctd().restart();
    const ls = await ctd().ctr("default", "images", "ls", "-q");
    expect(ls.stdout.toString().split("\n")).toEqual(
      expect.arrayContaining([lazyImage, mixedImage]),
    );
    const snaps = await ctd().ctr("default", "snapshots", "--snapshotter", "seekable", "ls");
    expect(snaps.code, describeRun(snaps)).toBe(0);
    expect(snaps.stdout.toString().trim().split("\n")).toHaveLength(1 + 4);
    const run = await ctrRun(mixedImage, "mixed2", "python3", "/app/main.py");
    expect(run.code, `${describeRun(run)}\n${again.stderr()}`).toBe(0);
    expect(run.stdout.toString()).toBe('{"ok": true}\n');
  });

  it("a registry failure mid-read is EIO in the container; the snapshotter and containerd stay up and the next read works", async () => {
    const app = env.layers[2].digest;
    env.proxy.rule = (req) =>
      req.url?.includes(app) ? { kind: "status", status: 500 } : undefined;
    try {
      const failed = await ctrRun(lazyImage, "eio1", "busybox", "md5sum", "/app/big.bin");
      expect(failed.code, describeRun(failed)).not.toBe(0);
      expect(`${failed.stdout}${failed.stderr}`).toMatch(/Input\/output error/);
    } finally {
      env.proxy.rule = undefined;
    }
    expect(env.snapshotter?.proc.exitCode).toBeNull();
    const v = await ctd().ctr("default", "version");
    expect(v.code, describeRun(v)).toBe(0);
    const again = await ctrRun(
      lazyImage,
      "eio2",
      "sh",
      "-c",
      'echo "$(busybox md5sum /app/big.bin)"',
    );
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout.toString()).toBe(`${md5(BIG)}  /app/big.bin\n`);
  });

  it("seekable pull of a missing image or into an unreachable containerd: one line naming the input, exit 1, nothing left", async () => {
    const missing = lazyImage.replace(/:esgz$/, ":missing");
    const r = await seekable("pull", "--containerd", ctd().socket, `docker://${missing}`);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(missing);
    const nowhere = join(env.work, "no-containerd.sock");
    const r2 = await seekable("pull", "--containerd", nowhere, `docker://${lazyImage}`);
    expect(r2.code, describeRun(r2)).toBe(1);
    expect(r2.stderr.trim().split("\n")).toHaveLength(1);
    expect(r2.stderr).toContain(nowhere);
    const ls = await ctd().ctr("default", "images", "ls", "-q");
    expect(ls.stdout.toString()).not.toContain(missing);
    const leases = await ctd().ctr("default", "leases", "ls", "-q");
    expect(leases.stdout.toString().trim()).toBe("");
  });

  it("ctr images rm + GC leaves no snapshot, directory, mount or database row behind", async () => {
    for (const img of [lazyImage, mixedImage]) {
      const r = await ctd().ctr("default", "images", "rm", "--sync", img);
      expect(r.code, describeRun(r)).toBe(0);
    }
    const snaps = await ctd().ctr("default", "snapshots", "--snapshotter", "seekable", "ls");
    expect(snaps.stdout.toString().trim().split("\n")).toHaveLength(1); // the header
    const content = await ctd().ctr("default", "content", "ls", "-q");
    expect(content.stdout.toString().trim()).toBe("");
    expect(await readdir(join(env.root, "snapshots"))).toEqual([]);
    expect(await env.mountsUnder()).toEqual([]);
    const db = new Database(join(env.root, "metadata.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) AS n FROM snapshots").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});
