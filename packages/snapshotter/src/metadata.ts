import Database from "better-sqlite3";

/** containerd's snapshot kinds, numbered as in snapshots.proto. */
export const Kind = { view: 1, active: 2, committed: 3 } as const;
export type KindName = keyof typeof Kind;

export interface SnapshotRow {
  id: number;
  name: string;
  /** The parent's row id (a committed snapshot), if any. */
  parentId: number | null;
  kind: KindName;
  labels: Record<string, string>;
  created: number;
  updated: number;
  /** Committed local snapshots: bytes and inodes of their directory at commit. */
  size: number;
  inodes: number;
  /** A remote (lazy) layer: `<base64 image ref>/<layer digest>` under the layer store. */
  remote: string | null;
}

interface Raw {
  id: number;
  name: string;
  parent_id: number | null;
  kind: number;
  labels: string;
  created: number;
  updated: number;
  size: number;
  inodes: number;
  remote: string | null;
}

const KIND_NAMES: Record<number, KindName> = { 1: "view", 2: "active", 3: "committed" };

function row(r: Raw): SnapshotRow {
  return {
    id: r.id,
    name: r.name,
    parentId: r.parent_id,
    kind: KIND_NAMES[r.kind],
    labels: JSON.parse(r.labels) as Record<string, string>,
    created: r.created,
    updated: r.updated,
    size: r.size,
    inodes: r.inodes,
    remote: r.remote,
  };
}

/**
 * The snapshots' metadata in one SQLite database (WAL, every change one transaction): after
 * `kill -9` it holds exactly the operations that answered. Directories are named after row
 * ids, which are never reused (AUTOINCREMENT), so a directory left by a crash between the
 * row's deletion and the directory's is an orphan Cleanup can recognise.
 */
export class Metadata {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(`CREATE TABLE IF NOT EXISTS snapshots (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL UNIQUE,
      parent_id INTEGER REFERENCES snapshots(id),
      kind INTEGER NOT NULL,
      labels TEXT NOT NULL,
      created INTEGER NOT NULL,
      updated INTEGER NOT NULL,
      size INTEGER NOT NULL DEFAULT 0,
      inodes INTEGER NOT NULL DEFAULT 0,
      remote TEXT
    )`);
  }

  /** Runs `fn` in one transaction (it must not await). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  get(name: string): SnapshotRow | undefined {
    const r = this.db.prepare("SELECT * FROM snapshots WHERE name = ?").get(name) as
      | Raw
      | undefined;
    return r && row(r);
  }

  byId(id: number): SnapshotRow | undefined {
    const r = this.db.prepare("SELECT * FROM snapshots WHERE id = ?").get(id) as Raw | undefined;
    return r && row(r);
  }

  all(): SnapshotRow[] {
    return (this.db.prepare("SELECT * FROM snapshots ORDER BY id").all() as Raw[]).map(row);
  }

  hasChildren(id: number): boolean {
    return (
      this.db.prepare("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1").get(id) !== undefined
    );
  }

  insert(s: Omit<SnapshotRow, "id">): SnapshotRow {
    const r = this.db
      .prepare(
        `INSERT INTO snapshots (name, parent_id, kind, labels, created, updated, size, inodes, remote)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        s.name,
        s.parentId,
        Kind[s.kind],
        JSON.stringify(s.labels),
        s.created,
        s.updated,
        s.size,
        s.inodes,
        s.remote,
      );
    return { ...s, id: Number(r.lastInsertRowid) };
  }

  /** A snapshot committed under a new name, with its usage at commit. */
  commit(id: number, name: string, labels: Record<string, string>, size: number, inodes: number) {
    this.db
      .prepare(
        "UPDATE snapshots SET name = ?, kind = ?, labels = ?, size = ?, inodes = ?, updated = ? WHERE id = ?",
      )
      .run(name, Kind.committed, JSON.stringify(labels), size, inodes, Date.now(), id);
  }

  setLabels(id: number, labels: Record<string, string>): void {
    this.db
      .prepare("UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?")
      .run(JSON.stringify(labels), Date.now(), id);
  }

  delete(id: number): void {
    this.db.prepare("DELETE FROM snapshots WHERE id = ?").run(id);
  }

  close(): void {
    this.db.close();
  }
}
