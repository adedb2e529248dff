import type { ImageFS, MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import type { ChunkItem } from "../chunks.js";
import type { Content } from "../content.js";
import { Budget } from "./budget.js";
import { type FirstReadListener, Guessing, type GuessKind } from "./guessing.js";
import { resolvePath } from "./resolve-path.js";

/** A file is fetched whole up to this many compressed bytes, else its first chunk. */
const WHOLE_LIMIT = 4 << 20;

/**
 * What every guesser shares: the merged image it resolves paths in, where each file's bytes
 * come from (`contentOf`: the mount has one Content for the image, the layer store one per
 * layer; undefined for a file not served lazily), the mount's Guessing (budget, fetch bounds,
 * background), and the files examined once already.
 */
export abstract class Guesser implements FirstReadListener {
  protected readonly examined = new WeakSet<object>();

  constructor(
    readonly fs: ImageFS,
    protected readonly contentOf: (m: MergedNode) => Content | undefined,
    protected readonly guessing: Guessing = new Guessing(),
  ) {}

  abstract firstRead(m: MergedNode): void;

  /** Resolves when every examination started so far, and those it started, are done. */
  settled(): Promise<void> {
    return this.guessing.settled();
  }

  /**
   * Fetches `files` (each once; whole when small, else its first chunk), one pool call per
   * Content, within the Guessing's bounds.
   */
  protected async fetchFiles(files: MergedNode[], kind: GuessKind): Promise<void> {
    const byContent = new Map<Content, ChunkItem[]>();
    const seen = new Set<object>();
    for (const f of files) {
      const n = resolved(f.node);
      const content = this.contentOf(f);
      if (!content || seen.has(n)) continue;
      seen.add(n);
      let packed = 0;
      for (const c of n.chunks) packed += c.nextOffset - c.offset;
      const end = packed <= WHOLE_LIMIT ? n.size : Math.min(n.size, 1);
      const its = end > 0 ? content.items(f, 0, end) : undefined;
      if (!its) continue;
      const list = byContent.get(content) ?? [];
      for (const it of its) list.push(it);
      byContent.set(content, list);
    }
    await Promise.all(
      [...byContent].map(([content, items]) => this.guessing.fetch(content.pool, items, kind)),
    );
  }

  /** `path` in the image with every symlink followed, spending from `budget`. */
  resolve(path: string, budget: Budget = new Budget()): MergedNode | undefined {
    return resolvePath(this.fs, path, budget);
  }

  /** A regular file at `path` (symlinks followed), or undefined. */
  protected regular(path: string, budget: Budget): MergedNode | undefined {
    const f = this.resolve(path, budget);
    return f && resolved(f.node).type === "reg" ? f : undefined;
  }
}
