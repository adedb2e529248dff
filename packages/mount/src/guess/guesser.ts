import type { ImageFS, MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import { Budget } from "./budget.js";
import type { GuessFiles } from "./files.js";
import { type FirstReadListener, Guessing, type GuessKind } from "./guessing.js";
import { resolvePath } from "./resolve-path.js";

/**
 * What every guesser shares: the merged image it resolves paths in, its files (GuessFiles:
 * what is lazy, bytes at hand or fetched as guesses), the host's Guessing (budget, fetch
 * bounds, background), and the files examined once already.
 */
export abstract class Guesser implements FirstReadListener {
  protected readonly examined = new WeakSet<object>();

  constructor(
    readonly fs: ImageFS,
    protected readonly files: GuessFiles,
    protected readonly guessing: Guessing = new Guessing(),
  ) {}

  abstract firstRead(m: MergedNode): void;

  /** Resolves when every examination started so far, and those it started, are done. */
  settled(): Promise<void> {
    return this.guessing.settled();
  }

  /** Fetches `files` (each once; whole when small, else its first chunk) within the bounds. */
  protected fetchFiles(files: MergedNode[], kind: GuessKind): Promise<void> {
    return this.files.fetch(files, kind, this.guessing);
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
