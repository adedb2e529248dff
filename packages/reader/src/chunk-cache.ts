import { randomBytes, webcrypto } from "node:crypto";
import { close, constants, fstat, mkdtempSync, openSync, read } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ChunkCache } from "@seekable/format";
import type { ReadStats } from "./stats.js";

const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);
const readAsync = (fd: number, buf: Buffer, at: number, length: number, position: number) =>
  new Promise<number>((resolve, reject) =>
    read(fd, buf, at, length, position, (e, n) => (e ? reject(e) : resolve(n))),
  );

/**
 * A least-recently-used map bounded by bytes: once the values' total `byteLength` passes
 * `maxBytes`, the least recently used go first. `get` marks an entry used; `has` and `peek`
 * do not. The one LRU of the project (the chunk caches of reader and mount use it).
 */
export class ByteLru<K, V extends { readonly byteLength: number }> {
  // Map iteration order is insertion order: re-inserting on use keeps the oldest first.
  private readonly map = new Map<K, V>();
  private total = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes held. */
  get bytes(): number {
    return this.total;
  }

  /** Entries held. */
  get size(): number {
    return this.map.size;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** The value without marking it used. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /**
   * Stores `value` as the most recently used, evicting the least recently used beyond
   * `maxBytes`. A key already held keeps its value (and its place); a value larger than
   * `maxBytes` is not stored. Returns whether it was stored.
   */
  add(key: K, value: V): boolean {
    if (value.byteLength > this.maxBytes || this.map.has(key)) return false;
    this.map.set(key, value);
    this.total += value.byteLength;
    for (const [k, v] of this.map) {
      if (this.total <= this.maxBytes) break;
      this.map.delete(k);
      this.total -= v.byteLength;
    }
    return true;
  }

  delete(key: K): boolean {
    const v = this.map.get(key);
    if (v === undefined) return false;
    this.map.delete(key);
    this.total -= v.byteLength;
    return true;
  }
}

/** Bounded in-memory LRU of verified chunks. */
export class MemoryChunkCache implements ChunkCache {
  private readonly lru: ByteLru<string, Uint8Array>;

  constructor(maxBytes = 32 << 20) {
    this.lru = new ByteLru(maxBytes);
  }

  get(digest: string, _size?: number): Uint8Array | undefined {
    return this.lru.get(digest);
  }

  put(digest: string, data: Uint8Array): void {
    this.lru.add(digest, data);
  }
}

/** Largest chunk file read when the caller does not know the chunk's size. */
const MAX_UNSIZED_CHUNK = 64 << 20;

/** How much the disk cache may hold in memory while its writes are behind. */
export interface DiskCacheOptions {
  /** Bytes accepted but not yet written; a put beyond this is dropped (default 64 MiB). */
  maxPendingBytes?: number;
  /** Files written at once (default 2: the thread pool also inflates and hashes). */
  writers?: number;
}

/**
 * Chunks on disk, content-addressed by chunk digest: DIR/chunks/sha256/ab/<hex>.
 * Written to a unique temporary name and renamed, so several processes can share the
 * directory. The directory is not trusted: only a regular file (not followed through a
 * symlink, opened without blocking, so a FIFO cannot hang a thread) of the expected size
 * whose bytes match the digest is a hit; anything else is a miss, replaced on the next put.
 *
 * Writes are behind: `put` returns at once and the file is written in the background (a
 * miss must not wait for mkdir, write and rename before its read is answered), at most
 * `maxPendingBytes` at a time; a chunk waiting to be written is a hit meanwhile. A cache
 * is only a cache: a write that cannot be made, or finds no room, is left out.
 */
export class DiskChunkCache implements ChunkCache {
  /** Verified chunks accepted by `put` and not yet on disk. */
  private readonly pending = new Map<string, Uint8Array>();
  private pendingBytes = 0;
  private readonly queue: string[] = [];
  private writing = 0;
  private readonly made = new Set<string>();
  private idle: (() => void)[] = [];
  private readonly maxPendingBytes: number;
  private readonly writers: number;

  constructor(
    readonly dir: string,
    opts: DiskCacheOptions = {},
  ) {
    this.maxPendingBytes = opts.maxPendingBytes ?? 64 << 20;
    this.writers = opts.writers ?? 2;
  }

  private path(digest: string): string | undefined {
    const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
    if (!m) return undefined;
    return join(this.dir, "chunks", "sha256", m[1].slice(0, 2), m[1]);
  }

  /** `size`: the chunk's size from its TOC entry; without it, files up to 64 MiB are read. */
  async get(digest: string, size?: number): Promise<Uint8Array | undefined> {
    const behind = this.pending.get(digest);
    if (behind && (size === undefined || behind.byteLength === size)) return behind;
    const p = this.path(digest);
    if (!p) return undefined;
    if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) return undefined;
    // Opened synchronously: on a cold start nearly every look-up is a miss, and ENOENT
    // costs microseconds here against a thread-pool round trip (queued behind inflates
    // and writes) on the path of a read the kernel waits for. O_NONBLOCK: a FIFO planted
    // in the directory cannot block the open.
    let fd: number;
    try {
      fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      const st = await fstatAsync(fd);
      if (!st.isFile()) return undefined;
      if (size === undefined ? st.size > MAX_UNSIZED_CHUNK : st.size !== size) return undefined;
      // Exactly the size fstat gave: a file that grows meanwhile cannot grow the buffer.
      const data = Buffer.allocUnsafe(st.size);
      let got = 0;
      while (got < data.length) {
        const bytesRead = await readAsync(fd, data, got, data.length - got, got);
        if (bytesRead === 0) return undefined;
        got += bytesRead;
      }
      // WebCrypto hashes on the thread pool: the main thread keeps serving reads meanwhile.
      const sum = Buffer.from(await webcrypto.subtle.digest("SHA-256", data)).toString("hex");
      return `sha256:${sum}` === digest ? data : undefined;
    } catch {
      return undefined;
    } finally {
      await closeAsync(fd).catch(() => {});
    }
  }

  /** Accepts a verified chunk; the file is written in the background. */
  put(digest: string, data: Uint8Array): void {
    if (!this.path(digest) || this.pending.has(digest)) return;
    if (this.pendingBytes + data.byteLength > this.maxPendingBytes) return;
    this.pending.set(digest, data);
    this.pendingBytes += data.byteLength;
    this.queue.push(digest);
    this.pump();
  }

  /** Resolves once every accepted chunk is written (or given up). */
  flush(): Promise<void> {
    if (this.writing === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    while (this.writing < this.writers && this.queue.length > 0) {
      const digest = this.queue.shift() as string;
      const data = this.pending.get(digest) as Uint8Array;
      this.writing++;
      void this.write(digest, data).finally(() => {
        this.pending.delete(digest);
        this.pendingBytes -= data.byteLength;
        this.writing--;
        this.pump();
        if (this.writing === 0 && this.queue.length === 0) {
          const waiters = this.idle;
          this.idle = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  private async write(digest: string, data: Uint8Array): Promise<void> {
    const p = this.path(digest) as string;
    const dir = join(p, "..");
    const tmp = `${p}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
    try {
      // Each directory once per process (a removed one is made again on the error path).
      if (!this.made.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.made.add(dir);
      }
      try {
        await writeFile(tmp, data, { flag: "wx" });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        this.made.delete(dir);
        await mkdir(dir, { recursive: true });
        await writeFile(tmp, data, { flag: "wx" });
      }
      try {
        await rename(tmp, p); // replaces a bad file, FIFO or symlink atomically
      } catch (e) {
        // A directory in the way cannot be renamed over: it goes first.
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "EISDIR" && code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
        await rm(p, { recursive: true, force: true });
        await rename(tmp, p);
      }
    } catch {
      await rm(tmp, { force: true }).catch(() => {}); // a cache that cannot be written is only slower
    }
  }
}

/** Memory first, then disk; counts bytes served from either as cache hits. */
export class TieredChunkCache implements ChunkCache {
  constructor(
    private readonly memory: MemoryChunkCache,
    private readonly disk: DiskChunkCache | undefined,
    private readonly stats: ReadStats,
    /** The disk directory is this run's own: removed at close. */
    private readonly privateDir = false,
  ) {}

  /** `size`: the chunk's size from its TOC entry, when the caller knows it. */
  async get(digest: string, size?: number): Promise<Uint8Array | undefined> {
    let v: Uint8Array | undefined = this.memory.get(digest);
    if (!v && this.disk) {
      v = await this.disk.get(digest, size);
      if (v) this.memory.put(digest, v);
    }
    if (v) this.stats.bytesServedFromCache += v.length;
    return v;
  }

  put(digest: string, data: Uint8Array): void {
    this.stats.chunksVerified++;
    this.memory.put(digest, data);
    this.disk?.put(digest, data);
  }

  /** Resolves once the disk cache's writes behind are done. */
  flush(): Promise<void> {
    return this.disk?.flush() ?? Promise.resolve();
  }

  /** Where chunks go on disk, if anywhere. */
  get diskDir(): string | undefined {
    return this.disk?.dir;
  }

  /** At the end of the run: the writes behind done (kept for the next run), or a private directory removed. */
  async close(): Promise<void> {
    await this.flush();
    if (this.privateDir && this.disk) await rm(this.disk.dir, { recursive: true, force: true });
  }
}

/**
 * The chunk cache of one run: memory, then `dir` on disk, shared across runs; with "private"
 * (`--no-cache`) a temporary directory of this run's own, removed at close, so that a run
 * never fetches a chunk twice even when memory cannot hold it (the kernel reads a large file
 * in 128 KiB pieces of 4 MiB chunks, in page-fault order); undefined: memory only.
 */
export function sessionCache(
  dir: string | "private" | undefined,
  stats: ReadStats,
): TieredChunkCache {
  if (dir === "private") {
    const own = mkdtempSync(join(tmpdir(), "seekable-run-"));
    return new TieredChunkCache(new MemoryChunkCache(), new DiskChunkCache(own), stats, true);
  }
  return new TieredChunkCache(
    new MemoryChunkCache(),
    dir ? new DiskChunkCache(dir) : undefined,
    stats,
  );
}

/** $XDG_CACHE_HOME/seekable, else ~/.cache/seekable. */
export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "seekable");
}
