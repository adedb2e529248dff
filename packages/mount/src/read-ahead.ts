import type { MergedNode } from "@seekable/reader";
import type { Content } from "./content.js";

/**
 * Read-ahead within one open file: after `trigger` reads in a row that each start where
 * the previous ended, the next `window` bytes are fetched in one reader call (one request,
 * coalesced), and again each time the reads get within half a window of that frontier.
 */
export class ReadAhead {
  private lastEnd = -1;
  private streak = 0;
  private frontier = 0;

  constructor(
    private readonly content: Content,
    private readonly m: MergedNode,
    private readonly size: number,
    private readonly window = 8 << 20,
    private readonly trigger = 2,
  ) {}

  /** Called after each read of [offset, end). */
  observe(offset: number, end: number): void {
    this.streak = offset === this.lastEnd || offset === 0 ? this.streak + 1 : 1;
    this.lastEnd = end;
    if (this.streak < this.trigger || end >= this.size) return;
    if (this.frontier > end + this.window / 2) return;
    const from = Math.max(end, this.frontier);
    const to = Math.min(this.size, end + this.window);
    this.frontier = to;
    if (from >= to) return;
    // Errors are left to the on-demand read that needs the bytes (it fetches again).
    this.content.ahead(this.m, from, to);
  }
}
