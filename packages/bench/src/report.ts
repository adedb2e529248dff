// Figures: medians with their spread, ratios to the full pull, and the Markdown table.
import { formatLink, type LinkSetting } from "./shaping-proxy.js";
import type { RunFigures, StrategyName } from "./strategies.js";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface ResultRow {
  workload: string;
  link: LinkSetting;
  strategy: StrategyName;
  runs: RunFigures[];
  seconds: Spread;
  bytesFetched: Spread;
  requests: Spread;
  /** Full pull's median time / this median time (how many times faster). */
  speedup: number;
  /** This median bytes / full pull's median bytes. */
  bytesRatio: number;
  /** Every file's sha256 matched the full pull's extracted files in every run. */
  verified: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

function seconds(s: Spread, runs: number): string {
  const m = `${s.median.toFixed(2)} s`;
  return runs > 1 ? `${m} (${s.min.toFixed(2)}–${s.max.toFixed(2)})` : m;
}

/** One row per workload × link × strategy; medians, [min–max] when repeated. */
export function markdownTable(rows: ResultRow[]): string {
  const header = [
    "workload",
    "link (RTT / bandwidth)",
    "strategy",
    "time",
    "× faster",
    "bytes fetched",
    "bytes vs full pull",
    "requests",
    "verified",
  ];
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const body = rows.map((r) =>
    line([
      r.workload,
      formatLink(r.link),
      r.strategy,
      seconds(r.seconds, r.runs.length),
      r.strategy === "full-pull" ? "1.0" : r.speedup.toFixed(1),
      formatBytes(r.bytesFetched.median),
      `${(r.bytesRatio * 100).toFixed(1)} %`,
      String(r.requests.median),
      r.verified ? "sha256 ok" : "MISMATCH",
    ]),
  );
  return [line(header), line(header.map(() => "---")), ...body].join("\n");
}
