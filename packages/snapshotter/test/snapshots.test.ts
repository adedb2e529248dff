// The snapshot bookkeeping on a real SQLite database and real directories (no containerd, no
// FUSE: a remote layer's store directory is an ordinary directory here).
import { mkdir, mkdtemp, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storePath } from "../src/labels.js";
import { Metadata } from "../src/metadata.js";
import { RemoteLayers } from "../src/remote.js";
import { Snapshots } from "../src/snapshots.js";

const D = (c: string) => `sha256:${c.repeat(64)}`;
let dir: string;
let db: Metadata;
let snaps: Snapshots;
let lines: string[];

function open(): Snapshots {
  db = new Metadata(join(dir, "metadata.db"));
  return new Snapshots({
    dir: join(dir, "snapshots"),
    db,
    remote: new RemoteLayers(join(dir, "store")),
    log: (l) => lines.push(l),
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "seekable-snapshots-"));
  await mkdir(join(dir, "snapshots"));
  await mkdir(join(dir, "store"));
  lines = [];
  snaps = open();
});

afterEach(async () => {
  db.close();
  await rm(dir, { recursive: true, force: true });
});

const remoteLabels = (target: string, digest: string) => ({
  "containerd.io/snapshot.ref": target,
  "containerd.io/snapshot/remote/stargz.reference": "127.0.0.1:5000/a/b:v1",
  "containerd.io/snapshot/remote/stargz.digest": digest,
  "containerd.io/snapshot/stargz/toc.digest": D("f"),
});

describe("Snapshots", () => {
  it("prepare, commit and prepare on top: mounts as containerd's overlay snapshotter gives them", async () => {
    const m0 = await snaps.prepare("k0", "", {});
    expect(m0).toEqual([
      { type: "bind", source: join(dir, "snapshots/1/fs"), options: ["rw", "rbind"] },
    ]);
    await writeFile(join(dir, "snapshots/1/fs/a"), "x".repeat(5000));
    await snaps.commit("c0", "k0", { l: "1" });
    expect(snaps.stat("c0")).toMatchObject({
      name: "c0",
      parent: "",
      kind: "committed",
      labels: { l: "1" },
    });
    expect((await snaps.usage("c0")).inodes).toBe(2);
    const m1 = await snaps.prepare("k1", "c0", {});
    expect(m1).toEqual([
      {
        type: "overlay",
        source: "overlay",
        options: [
          `workdir=${join(dir, "snapshots/2/work")}`,
          `upperdir=${join(dir, "snapshots/2/fs")}`,
          `lowerdir=${join(dir, "snapshots/1/fs")}`,
        ],
      },
    ]);
    expect(snaps.view("v", "c0", {})).toEqual([
      { type: "bind", source: join(dir, "snapshots/1/fs"), options: ["ro", "rbind"] },
    ]);
  });

  it("refuses what containerd must see refused, with its error kinds", async () => {
    await snaps.prepare("k0", "", {});
    await expect(snaps.prepare("k0", "", {})).rejects.toMatchObject({ kind: "already-exists" });
    await expect(snaps.prepare("k1", "nope", {})).rejects.toMatchObject({ kind: "not-found" });
    await expect(snaps.prepare("k1", "k0", {})).rejects.toMatchObject({ kind: "invalid-argument" });
    await snaps.commit("c0", "k0", {});
    await expect(snaps.commit("c1", "c0", {})).rejects.toMatchObject({
      kind: "failed-precondition",
    });
    await snaps.prepare("k1", "c0", {});
    await expect(snaps.remove("c0")).rejects.toMatchObject({ kind: "failed-precondition" });
    await expect(snaps.remove("zz")).rejects.toMatchObject({ kind: "not-found" });
    expect(() => snaps.stat("zz")).toThrow(/does not exist/);
  });

  it("a remote eStargz layer is committed under its target at Prepare (AlreadyExists), its fs a link to the store", async () => {
    const path = storePath("127.0.0.1:5000/a/b:v1", D("1"));
    await mkdir(join(dir, "store", path, "diff"), { recursive: true });
    await expect(snaps.prepare("ns/1/x", "", remoteLabels(D("c"), D("1")))).rejects.toMatchObject({
      kind: "already-exists",
    });
    const info = snaps.stat(D("c"));
    expect(info).toMatchObject({
      kind: "committed",
      labels: { "containerd.io/snapshot/remote": "remote snapshot" },
    });
    expect(await readlink(join(dir, "snapshots/1/fs"))).toBe(join(dir, "store", path, "diff"));
    // Asked again (another namespace): AlreadyExists at once.
    await expect(snaps.prepare("ns2/1/x", "", remoteLabels(D("c"), D("1")))).rejects.toMatchObject({
      kind: "already-exists",
    });
    expect(snaps.list([`labels."containerd.io/snapshot.ref"==${D("c")},parent==""`])).toHaveLength(
      1,
    );
  });

  it("a remote layer the store cannot serve is an ordinary snapshot containerd unpacks into (one line says why)", async () => {
    const m = await snaps.prepare("k", "", remoteLabels(D("c"), D("2")));
    expect(m[0].type).toBe("bind");
    expect(snaps.stat("k").kind).toBe("active");
    expect(lines.join("\n")).toMatch(/not lazy, unpacked by containerd/);
  });

  it("state survives a reopen; remove deletes row and directory; cleanup removes orphans", async () => {
    await snaps.prepare("k0", "", {});
    await snaps.commit("c0", "k0", {});
    await snaps.prepare("k1", "c0", {});
    db.close();
    snaps = open();
    expect(snaps.list([]).map((i) => [i.name, i.parent, i.kind])).toEqual([
      ["c0", "", "committed"],
      ["k1", "c0", "active"],
    ]);
    await snaps.remove("k1");
    expect(await readdir(join(dir, "snapshots"))).toEqual(["1"]);
    await mkdir(join(dir, "snapshots/77/fs"), { recursive: true }); // a crash's leftover
    await snaps.cleanup();
    expect(await readdir(join(dir, "snapshots"))).toEqual(["1"]);
    expect(lines.join("\n")).toMatch(/77: no snapshot owns it/);
  });

  it("update sets and removes labels by field path", async () => {
    await snaps.prepare("k0", "", { a: "1", b: "2" });
    const info = snaps.update({ ...snaps.stat("k0"), labels: { a: "9" } }, [
      "labels.a",
      "labels.b",
    ]);
    expect(info.labels).toEqual({ a: "9" });
    expect(() => snaps.update(snaps.stat("k0"), ["kind"])).toThrow(/cannot update/);
  });
});
