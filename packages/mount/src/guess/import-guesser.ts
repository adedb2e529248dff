import type { MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import { type Budget, GUESS_LIMITS } from "./budget.js";
import type { GuessFiles } from "./files.js";
import { Guesser } from "./guesser.js";
import { type Guessing, turn } from "./guessing.js";

export interface GuesserOptions {
  /** Files guessed per file read at most (GUESS_LIMITS.files at most). */
  maxPerFile?: number;
  /** How far guesses are followed before the program reads them (guesses of guesses). */
  depth?: number;
}

/** Files larger than this are not examined for imports. */
const MAX_EXAMINED = 4 << 20;

/**
 * What a program reads next, guessed from a file it just read (the modules a module
 * imports): the guesses are fetched as `likely` (within the pool's neighbour budget: their
 * bytes count as unused until a read wants them), then examined in turn, `depth` levels
 * deep, so a chain of imports is at hand instead of a round trip away each. Subclasses say
 * which files they read and what those name, spending from the examination's budget; a
 * wrong guess costs bytes, never a wrong answer.
 */
export abstract class ImportGuesser extends Guesser {
  protected readonly maxPerFile: number;
  private readonly depth: number;

  constructor(
    fs: Guesser["fs"],
    files: GuessFiles,
    guessing?: Guessing,
    opts: GuesserOptions = {},
  ) {
    super(fs, files, guessing);
    this.maxPerFile = Math.min(opts.maxPerFile ?? GUESS_LIMITS.files, GUESS_LIMITS.files);
    this.depth = opts.depth ?? 3;
  }

  /** Files of this kind (by path) are examined. */
  protected abstract accepts(path: string): boolean;

  /** The files `m` (its bytes `data`) will make the program read (at most maxPerFile). */
  protected abstract guess(m: MergedNode, data: Uint8Array, budget: Budget): MergedNode[];

  /** A file's first read (offset 0). */
  firstRead(m: MergedNode): void {
    this.consider(m, this.depth);
  }

  private consider(m: MergedNode, depth: number): void {
    const n = resolved(m.node);
    if (depth <= 0 || n.type !== "reg" || this.examined.has(n)) return;
    if (!this.accepts(m.node.path) || n.size > MAX_EXAMINED) return;
    if (!this.files.lazy(m)) return;
    this.examined.add(n);
    this.guessing.run((budget) => this.examine(m, depth, budget));
  }

  private async examine(m: MergedNode, depth: number, budget: Budget) {
    const data = await this.files.bytes(m, 0, resolved(m.node).size);
    if (!data) return;
    await turn();
    const found: MergedNode[] = [];
    for (const f of this.guess(m, data, budget)) {
      if (found.length >= this.maxPerFile) break;
      const n = resolved(f.node);
      if (f !== m && n.type === "reg" && !this.examined.has(n) && !found.includes(f)) found.push(f);
    }
    if (found.length === 0) return;
    await this.fetchFiles(found, "likely");
    // What came is examined in its turn: the chain of imports is fetched ahead.
    for (const f of found) this.consider(f, depth - 1);
  }
}
