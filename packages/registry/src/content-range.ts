/** A satisfied byte range from Content-Range: inclusive end, total when known. */
export interface ContentRange {
  start: number;
  end: number;
  total: number | undefined;
}

/** Parses "bytes 100-199/1000" (total may be "*"); undefined for anything else. */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? "");
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

/** A range to request: [start, end) with end exclusive, or the last `suffix` bytes. */
export type HttpRange = { start: number; end: number } | { suffix: number };

/** The Range header value for one or more ranges: "bytes=0-9,100-109" or "bytes=-51". */
export function rangeHeader(ranges: readonly HttpRange[]): string {
  return `bytes=${ranges.map((r) => ("suffix" in r ? `-${r.suffix}` : `${r.start}-${r.end - 1}`)).join(",")}`;
}
