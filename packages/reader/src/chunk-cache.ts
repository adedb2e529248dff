import { randomBytes, webcrypto } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ChunkCache } from "@seekable/format";
import type { ReadStats } from "./stats.js";

/** Bounded in-memory LRU of verified chunks (Map iteration order is insertion order). */
export class MemoryChunkCache implements ChunkCache {
  private readonly map = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 32 << 20) {}

  get(digest: string): Uint8Array | undefined {
    const v = this.map.get(digest);
    if (v) {
      this.map.delete(digest);
      this.map.set(digest, v);
    }
    return v;
  }

  put(digest: string, data: Uint8Array): void {
    if (data.length > this.maxBytes || this.map.has(digest)) return;
    this.map.set(digest, data);
    this.bytes += data.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }
}

/**
 * Chunks on disk, content-addressed by chunk digest: DIR/chunks/sha256/ab/<hex>.
 * Written to a unique temporary name and renamed, so several processes can share the
 * directory; read bytes are checked against the digest (a damaged file is a miss).
 */
export class DiskChunkCache implements ChunkCache {
  constructor(readonly dir: string) {}

  private path(digest: string): string | undefined {
    const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
    if (!m) return undefined;
    return join(this.dir, "chunks", "sha256", m[1].slice(0, 2), m[1]);
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    const p = this.path(digest);
    if (!p) return undefined;
    let data: Buffer;
    try {
      data = await readFile(p);
    } catch {
      return undefined;
    }
    // WebCrypto hashes on the thread pool: the main thread keeps serving reads meanwhile.
    const sum = Buffer.from(await webcrypto.subtle.digest("SHA-256", data)).toString("hex");
    if (`sha256:${sum}` !== digest) {
      await rm(p, { force: true });
      return undefined;
    }
    return data;
  }

  async put(digest: string, data: Uint8Array): Promise<void> {
    const p = this.path(digest);
    if (!p) return;
    const dir = join(p, "..");
    const tmp = `${p}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(tmp, data, { flag: "wx" });
      await rename(tmp, p);
    } catch {
      await rm(tmp, { force: true }); // a cache that cannot be written is only slower
    }
  }
}

/** Memory first, then disk; counts bytes served from either as cache hits. */
export class TieredChunkCache implements ChunkCache {
  constructor(
    private readonly memory: MemoryChunkCache,
    private readonly disk: DiskChunkCache | undefined,
    private readonly stats: ReadStats,
  ) {}

  async get(digest: string): Promise<Uint8Array | undefined> {
    let v: Uint8Array | undefined = this.memory.get(digest);
    if (!v && this.disk) {
      v = await this.disk.get(digest);
      if (v) this.memory.put(digest, v);
    }
    if (v) this.stats.bytesServedFromCache += v.length;
    return v;
  }

  async put(digest: string, data: Uint8Array): Promise<void> {
    this.stats.chunksVerified++;
    this.memory.put(digest, data);
    await this.disk?.put(digest, data);
  }
}

/** $XDG_CACHE_HOME/seekable, else ~/.cache/seekable. */
export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "seekable");
}
