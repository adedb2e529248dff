/**
 * Background work whose failures are left to the reads that need its results (a guess that
 * fails costs nothing), and which tests can wait for.
 */
export class Background {
  private readonly running = new Set<Promise<void>>();

  /** Runs `task` in the background; its failure is dropped. */
  run(task: Promise<void>): void {
    const p: Promise<void> = task.catch(() => {}).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Resolves when every task started so far, and those they started, are done. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
