import type { ImageFS, MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import { Background } from "./background.js";
import type { ChunkItem } from "../chunks.js";
import type { Content } from "../content.js";
import {
  dynamicInfo,
  type ElfHeader,
  type FileRange,
  multiarchOf,
  parseElfHeader,
  stringTableOf,
} from "./elf.js";
import { resolvePath } from "./resolve-path.js";

export interface LoaderPrefetchOptions {
  /** A library is fetched whole up to this many compressed bytes, else its first chunk. */
  wholeLimit?: number;
  /** ELF files examined per mount at most. */
  maxFiles?: number;
}

const HEAD = 64 << 10;
/** A name the dynamic loader may open: a shared object, or anything executable. */
const SHARED = /\.so(\.[0-9.]+)?$/;

/**
 * What the dynamic loader will read next, fetched before it asks. When a program or a shared
 * library is first read, its ELF headers name the interpreter (ld.so) and, in the dynamic
 * section, the libraries it needs; the loader then opens ld.so, /etc/ld.so.cache and each
 * library in turn, one round trip after another. Here they are found in the image as the
 * loader would find them (RUNPATH, Debian's multiarch and default directories, symlinks
 * followed) and fetched together, one request per layer, then examined in their turn.
 * Every byte is verified like any other (the pool's chunks); a wrong guess costs bytes,
 * never a wrong answer, and any failure is left to the on-demand read.
 */
export class LoaderPrefetch {
  private readonly examined = new WeakSet<object>();
  private count = 0;
  private readonly background = new Background();
  private readonly wholeLimit: number;
  private readonly maxFiles: number;

  /**
   * `contentOf`: where a node's bytes come from (the mount: one Content for the image; the
   * layer store: each layer's own), undefined for a node that is not served lazily.
   */
  constructor(
    readonly fs: ImageFS,
    private readonly contentOf: (m: MergedNode) => Content | undefined,
    opts: LoaderPrefetchOptions = {},
  ) {
    this.wholeLimit = opts.wholeLimit ?? 4 << 20;
    this.maxFiles = opts.maxFiles ?? 256;
  }

  /** A file's first read (offset 0): examined once, in the background. */
  firstRead(m: MergedNode): void {
    const n = resolved(m.node);
    if (!this.contentOf(m)) return;
    if (n.type !== "reg" || n.size < 64 || this.examined.has(n)) return;
    if ((n.mode & 0o111) === 0 && !SHARED.test(n.path)) return;
    this.examined.add(n);
    if (++this.count > this.maxFiles) return;
    this.background.run(this.examine(m));
  }

  /** Resolves when every examination started so far, and those it started, are done. */
  settled(): Promise<void> {
    return this.background.settled();
  }

  private async examine(m: MergedNode): Promise<void> {
    const n = resolved(m.node);
    const head = await this.bytes(m, { offset: 0, length: Math.min(n.size, HEAD) });
    const h = head && parseElfHeader(head);
    if (!h) return;
    const first: MergedNode[] = [];
    if (h.interp) {
      const interp = this.resolve(h.interp);
      if (interp) first.push(interp);
      const cache = this.resolve("/etc/ld.so.cache");
      if (cache) first.push(cache);
    }
    const dynRange = h.dynamic && this.inFile(h.dynamic, n.size);
    // A small object's dynamic table is in the chunk at hand: interpreter and libraries then
    // go in one request per layer. A large one's is further in: the interpreter is fetched
    // while the table is.
    const libsNow = dynRange && this.librariesAtHand(m, h, dynRange);
    if (libsNow) {
      await this.fetchAndExamine([...first, ...libsNow]);
      return;
    }
    const interpDone = this.fetchAndExamine(first);
    const libs = dynRange && (await this.librariesFetched(m, h, dynRange));
    if (libs) await this.fetchAndExamine(libs);
    await interpDone;
  }

  private async fetchAndExamine(files: MergedNode[]): Promise<void> {
    await this.fetchFiles(files);
    for (const f of files) this.firstRead(f);
  }

  /** The libraries an object needs, when its dynamic and string tables are in chunks at hand. */
  private librariesAtHand(m: MergedNode, h: ElfHeader, dynRange: FileRange) {
    const dyn = this.bytesAtHand(m, dynRange);
    const strRange = dyn && stringTableOf(h, dyn);
    const strtab = strRange && this.bytesAtHand(m, this.inFile(strRange, resolved(m.node).size));
    return dyn && strtab ? this.needs(m, h, dyn, strtab) : undefined;
  }

  /** The same, fetching the tables. */
  private async librariesFetched(m: MergedNode, h: ElfHeader, dynRange: FileRange) {
    const dyn = await this.bytes(m, dynRange);
    const strRange = dyn && stringTableOf(h, dyn);
    const strtab = strRange && (await this.bytes(m, this.inFile(strRange, resolved(m.node).size)));
    return dyn && strtab ? this.needs(m, h, dyn, strtab) : undefined;
  }

  private needs(m: MergedNode, h: ElfHeader, dyn: Uint8Array, strtab: Uint8Array) {
    const info = dynamicInfo(h, dyn, strtab);
    return this.libraries(h, info.needed, info.searchPath, resolved(m.node).path);
  }

  /** Where the loader finds each needed library (the first match), not yet examined. */
  private libraries(
    h: ElfHeader,
    needed: string[],
    searchPath: string[],
    objectPath: string,
  ): MergedNode[] {
    const origin = `/${objectPath.slice(0, Math.max(0, objectPath.lastIndexOf("/")))}`;
    const arch = multiarchOf(h.machine, h.is64);
    const dirs = [
      ...searchPath.map((d) => d.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin)),
      ...(arch ? [`/usr/local/lib/${arch}`, `/lib/${arch}`, `/usr/lib/${arch}`] : []),
      "/usr/local/lib",
      ...(h.is64 ? ["/lib64", "/usr/lib64"] : []),
      "/lib",
      "/usr/lib",
    ];
    const out: MergedNode[] = [];
    for (const name of needed) {
      const candidates = name.includes("/") ? [name] : dirs.map((d) => `${d}/${name}`);
      for (const c of candidates) {
        const found = this.resolve(c);
        if (found && resolved(found.node).type === "reg") {
          if (!this.examined.has(resolved(found.node))) out.push(found);
          break;
        }
      }
    }
    return out;
  }

  /** The chunks of each file (whole when small, else its first), one pool call per pool. */
  private async fetchFiles(files: MergedNode[]): Promise<void> {
    const byContent = new Map<Content, ChunkItem[]>();
    for (const f of files) {
      const content = this.contentOf(f);
      if (!content) continue;
      const n = resolved(f.node);
      let packed = 0;
      for (const c of n.chunks) packed += c.nextOffset - c.offset;
      const end = packed <= this.wholeLimit ? n.size : Math.min(n.size, 1);
      const its = end > 0 ? content.items(f, 0, end) : undefined;
      if (!its) continue;
      const list = byContent.get(content) ?? [];
      list.push(...its.filter((it) => !content.pool.has(it.key)));
      byContent.set(content, list);
    }
    await Promise.all(
      [...byContent].map(([content, items]) =>
        items.length > 0 ? content.pool.get(items, false) : undefined,
      ),
    );
  }

  private bytes(m: MergedNode, r: FileRange): Promise<Uint8Array | undefined> {
    return this.contentOf(m)?.bytes(m, r.offset, r.length) ?? Promise.resolve(undefined);
  }

  private bytesAtHand(m: MergedNode, r: FileRange): Uint8Array | undefined {
    return this.contentOf(m)?.bytesAtHand(m, r.offset, r.length);
  }

  private inFile(r: FileRange, size: number): FileRange {
    const offset = Math.min(r.offset, size);
    return { offset, length: Math.min(r.length, size - offset, 1 << 20) };
  }

  /** `path` in the image with every symlink followed. */
  resolve(path: string): MergedNode | undefined {
    return resolvePath(this.fs, path);
  }
}

/** Every guesser told of each first read (the FUSE operations take one). */
export function nextReads(
  ...guessers: ({ firstRead(m: MergedNode): void } | undefined)[]
): { firstRead(m: MergedNode): void } | undefined {
  const live = guessers.filter((g) => g !== undefined);
  if (live.length === 0) return undefined;
  return {
    firstRead: (m) => {
      for (const g of live) g.firstRead(m);
    },
  };
}
