// Figures: medians with their spread, ratios to the full pull, and the Markdown table.
import { formatLink, type LinkSetting } from "./shaping-proxy.js";
import { type RunFigures, STRATEGY_LABELS, type StrategyName } from "./strategies.js";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface ResultRow {
  workload: string;
  link: LinkSetting;
  strategy: StrategyName;
  /** What the strategy is, in words. */
  label: string;
  runs: RunFigures[];
  seconds: Spread;
  /** Mount strategies: time until the file system answered (process start included). */
  readySeconds?: Spread;
  bytesFetched: Spread;
  requests: Spread;
  /** Full pull's median time / this median time (how many times faster). */
  speedup: number;
  /** This median bytes / full pull's median bytes. */
  bytesRatio: number;
  /** This median bytes / the workload's lower bound (CheckedWorkload.lowerBound). */
  boundRatio: number;
  /**
   * This median time / the physical limit: the workload's warm run on a local copy (the full
   * pull's rootfs, run again) + 3 round trips (manifest, layer tails, data) + the lower
   * bound's bytes / the bandwidth. NaN without a full pull in the run.
   */
  limitRatio: number;
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

/**
 * The physical limit of a cold start, in seconds: the program's warm run on a local copy +
 * 3 round trips (manifest, layer tails, data) + the lower bound's bytes over the link.
 */
export function physicalLimit(warmSeconds: number, lowerBound: number, link: LinkSetting): number {
  const transfer = link.mbit > 0 ? (lowerBound * 8) / (link.mbit * 1e6) : 0;
  return warmSeconds + (3 * link.rttMs) / 1000 + transfer;
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

/**
 * One row per workload × link × strategy; medians, [min–max] when repeated. Strategies
 * that could not run are listed under the table.
 */
export function markdownTable(
  rows: ResultRow[],
  unavailable: { strategy: StrategyName; reason: string }[] = [],
): string {
  const header = [
    "workload",
    "link (RTT / bandwidth)",
    "strategy",
    "time",
    "of which mount ready",
    "× faster",
    "bytes fetched",
    "bytes vs full pull",
    "× lower bound",
    "× limit",
    "requests",
    "verified",
  ];
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const body = rows.map((r) =>
    line([
      r.workload,
      formatLink(r.link),
      r.label,
      seconds(r.seconds, r.runs.length),
      r.readySeconds ? seconds(r.readySeconds, r.runs.length) : "–",
      r.strategy === "full-pull" ? "1.0" : Number.isFinite(r.speedup) ? r.speedup.toFixed(1) : "–",
      formatBytes(r.bytesFetched.median),
      Number.isFinite(r.bytesRatio) ? `${(r.bytesRatio * 100).toFixed(1)} %` : "–",
      Number.isFinite(r.boundRatio) ? r.boundRatio.toFixed(2) : "–",
      Number.isFinite(r.limitRatio) ? r.limitRatio.toFixed(2) : "–",
      String(r.requests.median),
      r.verified ? "sha256 ok" : "MISMATCH",
    ]),
  );
  const notes = unavailable.map(
    (u) => `- ${STRATEGY_LABELS[u.strategy]}: not available (${u.reason})`,
  );
  return [
    line(header),
    line(header.map(() => "---")),
    ...body,
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}
