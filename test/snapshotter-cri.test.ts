// containerd's CRI plugin (what the kubelet talks to) pulling through `seekable snapshotter`:
// with `disable_snapshot_annotations = false` it labels each layer's Prepare with the image
// reference and layer digest, the snapshotter commits every eStargz layer itself, and
// containerd downloads no layer blob; the image then runs from the lazy layers.

import { criPullImage } from "@seekable/snapshotter";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Containerd } from "./helpers/containerd.js";
import { describeRun } from "./helpers/run.js";
import { type SnapshotterEnv, snapshotterEnv } from "./helpers/snapshotter-env.js";

let env: SnapshotterEnv;
let image: string;
const ctd = () => env.containerd as Containerd;

beforeAll(async () => {
  env = await snapshotterEnv("seekable/cri", { cri: true });
  image = await env.push("cri", env.layers);
}, 600_000);

afterAll(async () => {
  if (!env) return;
  await env.containerd?.ctr("k8s.io", "images", "rm", "--sync", image).catch(() => {});
  await env.close();
});

describe("seekable snapshotter behind containerd's CRI plugin", () => {
  it("CRI PullImage downloads no layer blob (each eStargz layer committed lazily); ctr -n k8s.io run starts python3 from it", async () => {
    const from = env.proxy.log.length;
    const ref = await criPullImage(ctd().socket, image);
    expect(ref).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Every layer request was a range of a footer or TOC: no whole blob, a few percent of it.
    const layerRequests = env.proxy.log
      .slice(from)
      .filter((e) => env.layers.some((l) => e.url.endsWith(`/blobs/${l.digest}`)));
    expect(layerRequests.length).toBeGreaterThan(0);
    for (const e of layerRequests) expect(e.range, e.url).toBeDefined();
    const total = env.layers.reduce((n, l) => n + l.blob.length, 0);
    expect(env.layerBytes(from, env.layers)).toBeLessThan(total * 0.05);
    expect(env.snapshotter?.stderr()).not.toMatch(/unpacked by containerd/);

    const snaps = await ctd().ctr("k8s.io", "snapshots", "--snapshotter", "seekable", "ls");
    expect(snaps.code, describeRun(snaps)).toBe(0);
    expect(snaps.stdout.toString().match(/Committed/g)).toHaveLength(3);

    const run = await ctd().run(
      "k8s.io",
      image,
      "cri1",
      "python3",
      "-c",
      "import json; print(json.dumps({'cri': 1}))",
    );
    expect(run.code, `${describeRun(run)}\n${env.snapshotter?.stderr()}`).toBe(0);
    expect(run.stdout.toString()).toBe('{"cri": 1}\n');
  });
});
