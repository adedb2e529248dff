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

/**
 * Merges sorted ranges into at most `maxSpans` spans (one multi-range request): overlapping and
 * adjacent ones always (coalesce), then the smallest gaps first, so the bytes fetched in vain
 * are as few as they can be; a gap wider than `maxGap` is never closed (more spans, rather
 * than megabytes of unwanted data).
 */
export function mergeSpans(
  ranges: readonly { start: number; end: number }[],
  maxSpans: number,
  maxGap: number,
): Span[] {
  const spans = coalesce(
    ranges.map((r) => ({ offset: r.start, length: r.end - r.start })),
    0,
  );
  if (spans.length <= maxSpans) return spans;
  const gaps = spans
    .slice(1)
    .map((s, i) => ({ i, gap: s.start - spans[i].end }))
    .filter((g) => g.gap <= maxGap)
    .sort((a, b) => a.gap - b.gap || a.i - b.i)
    .slice(0, spans.length - maxSpans);
  const join = new Set(gaps.map((g) => g.i));
  const out: Span[] = [];
  spans.forEach((s, i) => {
    const last = out[out.length - 1];
    if (last && join.has(i - 1)) {
      last.end = s.end;
      last.members.push(...s.members);
    } else out.push(s);
  });
  return out;
}
