/**
 * What one examination of a file may cost. A guess is never allowed to cost more than the
 * read that caused it: the files it reads come from images anyone may push, so every loop
 * a guesser runs spends from one Budget, and a spent budget ends the guess silently with
 * what was found so far (the reads themselves still fetch on demand). The numbers are
 * stated here, once, and in the README's reliability section.
 */
export const GUESS_LIMITS = {
  /**
   * Work steps per examined file: a path component walked, a module or library name tried,
   * an import name considered. 100k steps are a few milliseconds of synchronous work.
   */
  steps: 100_000,
  /** Bytes in a path or symlink target, as the kernel's PATH_MAX. */
  pathBytes: 4096,
  /** Symlinks followed in one resolution, as the kernel's limit. */
  hops: 40,
  /** Files guessed from one examined file. */
  files: 32,
  /** Inflated bytes fetched for the files guessed from one examined file. */
  bytes: 64 << 20,
  /** Inflated bytes of guessed files in flight at once in one mount or store. */
  bytesInFlight: 128 << 20,
} as const;

/** A count of work steps; `spend` says whether there was any left. */
export class Budget {
  private left: number;

  constructor(steps: number = GUESS_LIMITS.steps) {
    this.left = steps;
  }

  /** Spends `n` steps; false once the budget is spent (the caller stops). */
  spend(n = 1): boolean {
    this.left -= n;
    return this.left >= 0;
  }

  get spent(): boolean {
    return this.left < 0;
  }

  /** Steps spent so far out of `total` (tests assert work, not milliseconds). */
  used(total: number = GUESS_LIMITS.steps): number {
    return total - this.left;
  }
}
