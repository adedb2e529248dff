import type { ImageFS, MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import { Background } from "./background.js";
import type { ChunkItem } from "../chunks.js";
import type { Content } from "../content.js";
import { resolvePath } from "./resolve-path.js";

export interface GuesserOptions {
  /** Files guessed per file read at most. */
  maxPerFile?: number;
  /** How far guesses are followed before the program reads them (guesses of guesses). */
  depth?: number;
}

/**
 * What a program reads next, guessed from a file it just read (the modules a module
 * imports): the guesses are fetched within the pool's neighbour budget (their bytes count as
 * unused until a read wants them), then examined in turn, `depth` levels deep, so a chain of
 * imports is at hand instead of a round trip away each. Subclasses say which files they
 * read and what those name; a wrong guess costs bytes, never a wrong answer.
 */
export abstract class ImportGuesser {
  protected readonly examined = new WeakSet<object>();
  private readonly background = new Background();
  protected readonly maxPerFile: number;
  private readonly depth: number;

  constructor(
    readonly fs: ImageFS,
    protected readonly contentOf: (m: MergedNode) => Content | undefined,
    opts: GuesserOptions = {},
  ) {
    this.maxPerFile = opts.maxPerFile ?? 32;
    this.depth = opts.depth ?? 3;
  }

  /** Files of this kind (by path) are examined. */
  protected abstract accepts(path: string): boolean;

  /** The files `m` (its bytes `data`) will make the program read. */
  protected abstract guess(m: MergedNode, data: Uint8Array): MergedNode[];

  /** A file's first read (offset 0). */
  firstRead(m: MergedNode): void {
    this.consider(m, this.depth);
  }

  /** Resolves when every examination started so far, and those it started, are done. */
  settled(): Promise<void> {
    return this.background.settled();
  }

  private consider(m: MergedNode, depth: number): void {
    const n = resolved(m.node);
    if (depth <= 0 || n.type !== "reg" || this.examined.has(n)) return;
    if (!this.accepts(m.node.path) || n.size > 4 << 20) return;
    const content = this.contentOf(m);
    if (!content) return;
    this.examined.add(n);
    this.background.run(this.examine(m, content, depth));
  }

  private async examine(m: MergedNode, content: Content, depth: number): Promise<void> {
    const data = await content.bytes(m, 0, resolved(m.node).size);
    if (!data) return;
    const found: MergedNode[] = [];
    for (const f of this.guess(m, data)) {
      if (found.length >= this.maxPerFile) break;
      const n = resolved(f.node);
      if (f !== m && n.type === "reg" && !this.examined.has(n) && !found.includes(f)) found.push(f);
    }
    if (found.length === 0) return;
    const byContent = new Map<Content, ChunkItem[]>();
    for (const f of found) {
      const c = this.contentOf(f);
      const its = c?.items(f, 0, resolved(f.node).size);
      if (c && its) byContent.set(c, [...(byContent.get(c) ?? []), ...its]);
    }
    await Promise.all([...byContent].map(([c, its]) => c.pool.speculate(its).done));
    // What came is examined in its turn: the chain of imports is fetched ahead.
    for (const f of found) this.consider(f, depth - 1);
  }

  protected resolve(path: string): MergedNode | undefined {
    return resolvePath(this.fs, path);
  }

  /** A regular file at `path` (symlinks followed), or undefined. */
  protected regular(path: string): MergedNode | undefined {
    const f = this.resolve(path);
    return f && resolved(f.node).type === "reg" ? f : undefined;
  }
}
