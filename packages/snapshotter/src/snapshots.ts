import { mkdirSync, symlinkSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, SnapshotError } from "./errors.js";
import { type Filterable, matches, parseFilter } from "./filters.js";
import { REMOTE_LABEL, REMOTE_LABEL_VALUE, remoteLayer } from "./labels.js";
import type { KindName, Metadata, SnapshotRow } from "./metadata.js";
import { type Mount, mountsFor } from "./overlay.js";
import type { RemoteLayers } from "./remote.js";
import { diskUsage, type Usage } from "./usage.js";

/** A snapshot as containerd's API describes it (snapshots.v1.Info). */
export interface Info {
  name: string;
  parent: string;
  kind: KindName;
  labels: Record<string, string>;
  created: number;
  updated: number;
}

export interface SnapshotsOptions {
  /** ROOT/snapshots: one directory per local snapshot, named by its row id. */
  dir: string;
  db: Metadata;
  remote: RemoteLayers;
  log(line: string): void;
  /** Extra overlay options (`index=off` where the kernel has the index feature). */
  overlayOptions?: string[];
}

/**
 * The snapshots, as containerd's overlayfs snapshotter keeps them, plus remote layers: a
 * Prepare whose labels name an eStargz layer commits it at once, backed by the layer store,
 * and answers AlreadyExists, so containerd downloads nothing for it.
 */
export class Snapshots {
  constructor(private readonly o: SnapshotsOptions) {}

  private dirOf(id: number): string {
    return join(this.o.dir, String(id));
  }

  private find(key: string): SnapshotRow {
    const s = this.o.db.get(key);
    if (!s) throw new SnapshotError("not-found", `snapshot ${key} does not exist`);
    return s;
  }

  info(s: SnapshotRow): Info {
    const parent = s.parentId === null ? "" : (this.o.db.byId(s.parentId)?.name ?? "");
    return {
      name: s.name,
      parent,
      kind: s.kind,
      labels: s.labels,
      created: s.created,
      updated: s.updated,
    };
  }

  /**
   * The files of a committed snapshot as a lower layer. For a remote layer, `fs` is a symlink
   * to the store's diff directory: overlayfs follows it, and the store's path has a ':' (the
   * layer digest) that lowerdir would take for a separator.
   */
  private tree(s: SnapshotRow): string {
    return join(this.dirOf(s.id), "fs");
  }

  private mountsOf(s: SnapshotRow): Mount[] {
    const lowers: string[] = [];
    for (let p = s.parentId; p !== null; ) {
      const parent = this.o.db.byId(p);
      if (!parent) throw new Error(`snapshot ${s.name}: parent row ${p} is missing`);
      lowers.push(this.tree(parent));
      p = parent.parentId;
    }
    if (s.kind === "committed") {
      // A committed layer is shown read-only, as a view of itself.
      return mountsFor({ kind: "view", fs: "", work: "", lowers: [this.tree(s)] });
    }
    const dir = this.dirOf(s.id);
    return mountsFor(
      { kind: s.kind, fs: join(dir, "fs"), work: join(dir, "work"), lowers },
      this.o.overlayOptions,
    );
  }

  private parentOf(key: string, parent: string): SnapshotRow | undefined {
    if (!key) throw new SnapshotError("invalid-argument", "a snapshot key must not be empty");
    if (this.o.db.get(key))
      throw new SnapshotError("already-exists", `snapshot ${key} already exists`);
    if (!parent) return undefined;
    const p = this.o.db.get(parent);
    if (!p) throw new SnapshotError("not-found", `parent snapshot ${parent} does not exist`);
    if (p.kind !== "committed") {
      throw new SnapshotError("invalid-argument", `parent ${parent} is not a committed snapshot`);
    }
    return p;
  }

  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    this.parentOf(key, parent);
    const remote = remoteLayer(labels);
    if (remote && "remote" in remote) {
      const l = remote.remote;
      const p = this.parentOf(key, parent);
      const existing = this.o.db.get(l.target);
      if (existing?.kind === "committed" && existing.parentId === (p?.id ?? null)) {
        throw new SnapshotError("already-exists", `target snapshot ${l.target} already exists`);
      }
      let path: string | undefined;
      try {
        path = await this.o.remote.open(l);
      } catch (e) {
        this.o.log(`${l.target}: not lazy, unpacked by containerd: ${describe(e)}`);
      }
      if (path !== undefined) {
        const remotePath = path;
        this.o.db.transaction(() => {
          const p2 = this.parentOf(key, parent); // checked again: the open awaited
          if (this.o.db.get(l.target)) {
            throw new SnapshotError("already-exists", `target snapshot ${l.target} already exists`);
          }
          const now = Date.now();
          const row = this.o.db.insert({
            name: l.target,
            parentId: p2?.id ?? null,
            kind: "committed",
            labels: { ...labels, [REMOTE_LABEL]: REMOTE_LABEL_VALUE },
            created: now,
            updated: now,
            size: 0,
            inodes: 0,
            remote: remotePath,
          });
          const dir = this.dirOf(row.id);
          mkdirSync(dir, { mode: 0o755 });
          symlinkSync(this.o.remote.diff(remotePath), join(dir, "fs"));
        });
        throw new SnapshotError("already-exists", `target snapshot ${l.target} already exists`);
      }
    } else if (remote && "local" in remote) {
      this.o.log(
        `${labels["containerd.io/snapshot.ref"]}: unpacked by containerd: ${remote.local}`,
      );
    }
    return this.create("active", key, parent, labels);
  }

  view(key: string, parent: string, labels: Record<string, string>): Mount[] {
    return this.create("view", key, parent, labels);
  }

  private create(
    kind: "view" | "active",
    key: string,
    parent: string,
    labels: Record<string, string>,
  ) {
    const s = this.o.db.transaction(() => {
      const p = this.parentOf(key, parent);
      const now = Date.now();
      const row = this.o.db.insert({
        name: key,
        parentId: p?.id ?? null,
        kind,
        labels,
        created: now,
        updated: now,
        size: 0,
        inodes: 0,
        remote: null,
      });
      // In the transaction: a failure leaves no row; a crash after it, an orphan Cleanup removes.
      const dir = this.dirOf(row.id);
      mkdirSync(join(dir, "fs"), { recursive: true, mode: 0o755 });
      if (kind === "active") mkdirSync(join(dir, "work"), { mode: 0o700 });
      return row;
    });
    return this.mountsOf(s);
  }

  mounts(key: string): Mount[] {
    return this.mountsOf(this.find(key));
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    const s = this.find(key);
    if (s.kind !== "active") {
      throw new SnapshotError("failed-precondition", `snapshot ${key} is not active`);
    }
    if (this.o.db.get(name))
      throw new SnapshotError("already-exists", `snapshot ${name} already exists`);
    const u = await diskUsage(join(this.dirOf(s.id), "fs"));
    this.o.db.transaction(() => {
      const again = this.o.db.get(key);
      if (again?.id !== s.id || again.kind !== "active") {
        throw new SnapshotError("not-found", `snapshot ${key} does not exist`);
      }
      if (this.o.db.get(name)) {
        throw new SnapshotError("already-exists", `snapshot ${name} already exists`);
      }
      this.o.db.commit(s.id, name, labels, u.size, u.inodes);
    });
    // overlayfs's work directory is of no use to a committed layer.
    await rm(join(this.dirOf(s.id), "work"), { recursive: true, force: true });
  }

  async remove(key: string): Promise<void> {
    const s = this.o.db.transaction(() => {
      const row = this.find(key);
      if (this.o.db.hasChildren(row.id)) {
        throw new SnapshotError("failed-precondition", `snapshot ${key} has children`);
      }
      this.o.db.delete(row.id);
      return row;
    });
    await rm(this.dirOf(s.id), { recursive: true, force: true }); // a remote layer's: the symlink
    // One use per snapshot on the layer (each counted at its Prepare, or at reopen).
    if (s.remote !== null) await this.o.remote.release(s.remote);
  }

  stat(key: string): Info {
    return this.info(this.find(key));
  }

  /** Update: labels only (containerd's fieldpaths `labels` and `labels.KEY`; none: all labels). */
  update(info: Info, paths: string[]): Info {
    return this.o.db.transaction(() => {
      const s = this.find(info.name);
      let labels = { ...s.labels };
      if (paths.length === 0) labels = { ...info.labels };
      for (const p of paths) {
        if (p === "labels") labels = { ...info.labels };
        else if (p.startsWith("labels.")) {
          const k = p.slice("labels.".length);
          if (info.labels[k] === undefined) delete labels[k];
          else labels[k] = info.labels[k];
        } else {
          throw new SnapshotError(
            "invalid-argument",
            `cannot update field ${JSON.stringify(p)} of ${s.name}`,
          );
        }
      }
      this.o.db.setLabels(s.id, labels);
      return this.info(this.find(info.name));
    });
  }

  list(filters: string[]): Info[] {
    let parsed: ReturnType<typeof parseFilter>[];
    try {
      parsed = filters.filter((f) => f.trim() !== "").map(parseFilter);
    } catch (e) {
      throw new SnapshotError("invalid-argument", describe(e));
    }
    const infos = this.o.db.all().map((s) => this.info(s));
    return infos.filter((i) => matches(i as Filterable, parsed));
  }

  async usage(key: string): Promise<Usage> {
    const s = this.find(key);
    if (s.kind === "committed") return { size: s.size, inodes: s.inodes };
    return diskUsage(join(this.dirOf(s.id), "fs"));
  }

  /** Removes directories no row owns (left by a crash between a row's deletion and its directory's). */
  async cleanup(): Promise<void> {
    for (const name of await readdir(this.o.dir)) {
      // Looked up now, not before the readdir: a Prepare may have made its directory meanwhile.
      if (/^\d+$/.test(name) && this.o.db.byId(Number(name))) continue;
      this.o.log(`removing ${join(this.o.dir, name)}: no snapshot owns it`);
      await rm(join(this.o.dir, name), { recursive: true, force: true });
    }
  }

  /** After a restart: the remote layers snapshots stand on are counted in use again. */
  async reopen(): Promise<void> {
    for (const s of this.o.db.all()) if (s.remote !== null) await this.o.remote.use(s.remote);
  }
}
