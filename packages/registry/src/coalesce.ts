import type { ByteRange } from "@seekable/format";

/** A contiguous byte span to fetch, [start, end), serving the requested ranges in `members`. */
export interface Span {
  start: number;
  end: number;
  members: number[];
}

/**
 * Merges requested ranges into spans: overlapping and adjacent ranges always, ranges whose
 * gap is at most `gap` bytes too (one request with a few wasted bytes beats two requests),
 * unless the merged span would exceed `maxSpan`. Empty ranges belong to no span.
 */
export function coalesce(
  ranges: readonly ByteRange[],
  gap: number,
  maxSpan = Number.POSITIVE_INFINITY,
): Span[] {
  const order = ranges
    .map((_, i) => i)
    .filter((i) => (ranges[i] as ByteRange).length > 0)
    .sort((a, b) => (ranges[a] as ByteRange).offset - (ranges[b] as ByteRange).offset);
  const spans: Span[] = [];
  let cur: Span | undefined;
  for (const i of order) {
    const r = ranges[i] as ByteRange;
    const end = r.offset + r.length;
    if (
      cur &&
      (r.offset <= cur.end ||
        (r.offset - cur.end <= gap && Math.max(end, cur.end) - cur.start <= maxSpan))
    ) {
      cur.end = Math.max(cur.end, end);
      cur.members.push(i);
    } else {
      cur = { start: r.offset, end, members: [i] };
      spans.push(cur);
    }
  }
  return spans;
}
