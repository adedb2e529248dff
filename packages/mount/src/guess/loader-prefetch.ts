import type { MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import type { Budget } from "./budget.js";
import {
  dynamicInfo,
  type ElfHeader,
  type FileRange,
  multiarchOf,
  parseElfHeader,
  stringTableOf,
} from "./elf.js";
import type { GuessFiles } from "./files.js";
import { Guesser } from "./guesser.js";
import { type Guessing, turn } from "./guessing.js";

export interface LoaderPrefetchOptions {
  /** ELF files examined per mount at most. */
  maxFiles?: number;
}

const HEAD = 64 << 10;
/** A name the dynamic loader may open: a shared object, or anything executable. */
const SHARED = /\.so(\.[0-9.]+)?$/;
/** RUNPATH directories tried per library, at most (then the default ones). */
const MAX_DIRS = 64;

/**
 * What the dynamic loader will read next, fetched before it asks. When a program or a shared
 * library is first read, its ELF headers name the interpreter (ld.so) and, in the dynamic
 * section, the libraries it needs; the loader then opens ld.so, /etc/ld.so.cache and each
 * library in turn, one round trip after another. Here they are found in the image as the
 * loader would find them (RUNPATH, Debian's multiarch and default directories, symlinks
 * followed) and fetched together as `certain` guesses (one request per layer, each library
 * once however often it is named), then examined in their turn. Every byte is verified like
 * any other (the pool's chunks); a wrong guess costs bytes, never a wrong answer, and any
 * failure is left to the on-demand read.
 */
export class LoaderPrefetch extends Guesser {
  private count = 0;
  private readonly maxFiles: number;

  constructor(
    fs: Guesser["fs"],
    files: GuessFiles,
    guessing?: Guessing,
    opts: LoaderPrefetchOptions = {},
  ) {
    super(fs, files, guessing);
    this.maxFiles = opts.maxFiles ?? 256;
  }

  /** A file's first read (offset 0): examined once, in the background. */
  firstRead(m: MergedNode): void {
    const n = resolved(m.node);
    if (!this.files.lazy(m)) return;
    if (n.type !== "reg" || n.size < 64 || this.examined.has(n)) return;
    if ((n.mode & 0o111) === 0 && !SHARED.test(n.path)) return;
    this.examined.add(n);
    if (++this.count > this.maxFiles) return;
    this.guessing.run((budget) => this.examine(m, budget));
  }

  private async examine(m: MergedNode, budget: Budget): Promise<void> {
    const n = resolved(m.node);
    const head = await this.bytes(m, { offset: 0, length: Math.min(n.size, HEAD) });
    if (!head) return;
    await turn();
    const h = parseElfHeader(head);
    if (!h) return;
    const first: MergedNode[] = [];
    if (h.interp) {
      const interp = this.resolve(h.interp, budget);
      if (interp) first.push(interp);
      const cache = this.resolve("/etc/ld.so.cache", budget);
      if (cache) first.push(cache);
    }
    const dynRange = h.dynamic && this.inFile(h.dynamic, n.size);
    // A small object's dynamic table is in the chunk at hand: interpreter and libraries then
    // go in one request per layer. A large one's is further in: the interpreter is fetched
    // while the table is.
    const libsNow = dynRange && this.librariesAtHand(m, h, dynRange, budget);
    if (libsNow) {
      await this.fetchAndExamine([...first, ...libsNow]);
      return;
    }
    const interpDone = this.fetchAndExamine(first);
    const libs = dynRange && (await this.librariesFetched(m, h, dynRange, budget));
    if (libs) await this.fetchAndExamine(libs);
    await interpDone;
  }

  private async fetchAndExamine(files: MergedNode[]): Promise<void> {
    await this.fetchFiles(files, "certain");
    for (const f of files) this.firstRead(f);
  }

  /** The libraries an object needs, when its dynamic and string tables are in chunks at hand. */
  private librariesAtHand(m: MergedNode, h: ElfHeader, dynRange: FileRange, budget: Budget) {
    const dyn = this.bytesAtHand(m, dynRange);
    const strRange = dyn && stringTableOf(h, dyn);
    const strtab = strRange && this.bytesAtHand(m, this.inFile(strRange, resolved(m.node).size));
    return dyn && strtab ? this.needs(m, h, dyn, strtab, budget) : undefined;
  }

  /** The same, fetching the tables. */
  private async librariesFetched(m: MergedNode, h: ElfHeader, dynRange: FileRange, budget: Budget) {
    const dyn = await this.bytes(m, dynRange);
    const strRange = dyn && stringTableOf(h, dyn);
    const strtab = strRange && (await this.bytes(m, this.inFile(strRange, resolved(m.node).size)));
    if (!dyn || !strtab) return undefined;
    await turn();
    return this.needs(m, h, dyn, strtab, budget);
  }

  private needs(m: MergedNode, h: ElfHeader, dyn: Uint8Array, strtab: Uint8Array, budget: Budget) {
    const info = dynamicInfo(h, dyn, strtab);
    return this.libraries(h, info.needed, info.searchPath, resolved(m.node).path, budget);
  }

  /**
   * Where the loader finds each needed library (the first match), not yet examined: each
   * name and directory once, every resolution spending from `budget`.
   */
  private libraries(
    h: ElfHeader,
    needed: string[],
    searchPath: string[],
    objectPath: string,
    budget: Budget,
  ): MergedNode[] {
    const origin = `/${objectPath.slice(0, Math.max(0, objectPath.lastIndexOf("/")))}`;
    const arch = multiarchOf(h.machine, h.is64);
    const runpath = new Set(searchPath.map((d) => d.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin)));
    const dirs = [
      ...new Set([
        ...[...runpath].slice(0, MAX_DIRS),
        ...(arch ? [`/usr/local/lib/${arch}`, `/lib/${arch}`, `/usr/lib/${arch}`] : []),
        "/usr/local/lib",
        ...(h.is64 ? ["/lib64", "/usr/lib64"] : []),
        "/lib",
        "/usr/lib",
      ]),
    ];
    const out = new Set<MergedNode>();
    const nodes = new Set<object>();
    for (const name of new Set(needed)) {
      if (budget.spent) break;
      const candidates = name.includes("/") ? [name] : dirs.map((d) => `${d}/${name}`);
      for (const c of candidates) {
        const found = this.resolve(c, budget);
        if (found && resolved(found.node).type === "reg") {
          const n = resolved(found.node);
          if (!this.examined.has(n) && !nodes.has(n)) {
            nodes.add(n);
            out.add(found);
          }
          break;
        }
        if (budget.spent) break;
      }
    }
    return [...out];
  }

  private bytes(m: MergedNode, r: FileRange): Promise<Uint8Array | undefined> {
    return this.files.bytes(m, r.offset, r.length);
  }

  private bytesAtHand(m: MergedNode, r: FileRange): Uint8Array | undefined {
    return this.files.bytesAtHand(m, r.offset, r.length);
  }

  private inFile(r: FileRange, size: number): FileRange {
    const offset = Math.min(r.offset, size);
    return { offset, length: Math.min(r.length, size - offset, 1 << 20) };
  }
}
