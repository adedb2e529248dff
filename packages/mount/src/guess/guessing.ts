import type { MergedNode } from "@seekable/reader";
import type { ChunkItem, ChunkPool } from "../chunks.js";
import { Background } from "./background.js";
import { Budget, GUESS_LIMITS } from "./budget.js";

/** Told of each file's first read (offset 0). The FUSE operations take one. */
export interface FirstReadListener {
  firstRead(m: MergedNode): void;
}

/** Every listener told of each first read; undefined when there is none. */
export function fanOut(
  ...listeners: (FirstReadListener | undefined)[]
): FirstReadListener | undefined {
  const live = listeners.filter((l) => l !== undefined);
  if (live.length === 0) return undefined;
  return {
    firstRead: (m) => {
      for (const l of live) l.firstRead(m);
    },
  };
}

/** Lets the event loop turn: what was queued before (FUSE requests) is answered first. */
export const turn = () => new Promise<void>((res) => setImmediate(res));

/** How sure a guess is: `certain` (the dynamic loader will open it) or a `likely` read. */
export type GuessKind = "certain" | "likely";

/**
 * Where every guesser's work runs, one per mount or store: the one rule for what a guess may
 * cost. An examination starts after the event loop has turned (the FUSE answers queued before
 * it go first) and spends from its own Budget of steps; the files it guesses are fetched
 * through `fetch`, which takes each chunk once, at most GUESS_LIMITS.bytes (inflated) per
 * examination and GUESS_LIMITS.bytesInFlight for the whole mount;
 * `likely` guesses are further held to the pool's neighbour budget (unused bytes at most a
 * share of what was read). What does not fit is not fetched: the read that wants it will.
 */
export class Guessing {
  private readonly background = new Background();
  private inflight = 0;

  /** Runs `examine` in the background with a fresh budget; its failure is dropped. */
  run(examine: (budget: Budget) => Promise<void>): void {
    this.background.run(turn().then(() => examine(new Budget())));
  }

  /** Resolves when every examination started so far, and those it started, are done. */
  settled(): Promise<void> {
    return this.background.settled();
  }

  /** Inflated bytes of guessed chunks being fetched now (tests hold it to its bound). */
  get bytesInFlight(): number {
    return this.inflight;
  }

  /**
   * Fetches guessed files that are not read through a pool (indexed gzip layers: `run` is
   * given the files that fit, and fetches their spans in one batched read per layer), within
   * the same bounds; resolves when the fetch has settled, never rejects.
   */
  async fetchFiles<T>(
    files: { file: T; bytes: number }[],
    run: (taken: T[]) => Promise<void>,
  ): Promise<void> {
    let bytes = 0;
    const cap = Math.min(GUESS_LIMITS.bytes, GUESS_LIMITS.bytesInFlight - this.inflight);
    const taken: T[] = [];
    for (const f of files) {
      if (bytes + f.bytes > cap) continue;
      bytes += f.bytes;
      taken.push(f.file);
    }
    if (taken.length === 0) return;
    this.inflight += bytes;
    try {
      await run(taken);
    } catch {
      // As for chunks: the read that wants the file fetches it again.
    } finally {
      this.inflight -= bytes;
    }
  }

  /**
   * Fetches the chunks of one examination's guesses (deduplicated, those at hand left out)
   * within the bounds above; resolves when the fetch has settled, never rejects.
   */
  async fetch(pool: ChunkPool, items: ChunkItem[], kind: GuessKind): Promise<void> {
    const seen = new Set<string>();
    let bytes = 0;
    const cap = Math.min(GUESS_LIMITS.bytes, GUESS_LIMITS.bytesInFlight - this.inflight);
    const taken: ChunkItem[] = [];
    for (const it of items) {
      if (seen.has(it.key) || pool.has(it.key)) continue;
      seen.add(it.key);
      if (bytes + it.ref.chunkSize > cap) continue;
      bytes += it.ref.chunkSize;
      taken.push(it);
    }
    if (taken.length === 0) return;
    this.inflight += bytes;
    try {
      if (kind === "certain") await pool.get(taken, false);
      else await pool.speculate(taken).done;
    } catch {
      // A guess that fails costs nothing: the read that wants the file fetches it again.
    } finally {
      this.inflight -= bytes;
    }
  }
}
