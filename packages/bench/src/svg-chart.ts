// A bar chart of the time until the workload ends, written by hand as SVG (no dependencies): one bar per
// workload × strategy, grouped per link setting, median height, min–max whisker.
import type { ResultRow } from "./report.js";
import { formatLink } from "./shaping-proxy.js";
import { STRATEGIES, STRATEGY_LABELS, type StrategyName } from "./strategies.js";

const COLORS: Record<StrategyName, string> = {
  "full-pull": "#9e9e9e",
  "cold-mount": "#1f77b4",
  "cold-mount-profile": "#2ca02c",
  "reference-store": "#ff7f0e",
  "batched-list": "#c5b0d5",
};
/** Legend entry width: swatch, label (about 6.6 px a character at 12 px), gap. */
const legendWidth = (s: StrategyName) => 18 + Math.ceil(STRATEGY_LABELS[s].length * 6.6) + 24;

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A round axis maximum and tick step (1, 2, 2.5 or 5 × 10^k) with about 5 ticks. */
export function niceScale(max: number): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw) as number;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

export function svgChart(
  allRows: ResultRow[],
  title = "Cold start: time until the program exits",
): string {
  // The batched file list is not a start: it stays in the table, never in the picture.
  const rows = allRows.filter((r) => r.strategy !== "batched-list");
  const links: string[] = [];
  const workloads: string[] = [];
  for (const r of rows) {
    const l = formatLink(r.link);
    if (!links.includes(l)) links.push(l);
    if (!workloads.includes(r.workload)) workloads.push(r.workload);
  }
  const strategies = STRATEGIES.filter((s) => rows.some((r) => r.strategy === s));
  const BAR = 30;
  const BAR_GAP = 6;
  const WL_GAP = 18;
  const GROUP_GAP = 48;
  const LEFT = 72;
  const TOP = 64;
  const PLOT_H = 300;
  const BOTTOM = workloads.length > 1 ? 92 : 70;
  const wlWidth = strategies.length * BAR + (strategies.length - 1) * BAR_GAP;
  const groupWidth = workloads.length * wlWidth + (workloads.length - 1) * WL_GAP;
  const groupsWidth = links.length * groupWidth + (links.length + 1) * GROUP_GAP;
  const legendX: number[] = [];
  let legendEnd = LEFT;
  for (const s of strategies) {
    legendX.push(legendEnd);
    legendEnd += legendWidth(s);
  }
  const width = Math.max(LEFT + groupsWidth, legendEnd + 20);
  // Few groups in a wide chart (the legend sets a minimum width) sit in the middle.
  const start = LEFT + Math.max(0, (width - 10 - LEFT - groupsWidth) / 2);
  const height = TOP + PLOT_H + BOTTOM;
  const top = Math.max(...rows.map((r) => r.seconds.max), 0);
  const scale = niceScale(top);
  const y = (v: number) => TOP + PLOT_H - (v / scale.max) * PLOT_H;
  const fmt = (v: number) => (scale.step < 1 ? v.toFixed(scale.step < 0.1 ? 2 : 1) : String(v));

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  );
  // Legend.
  strategies.forEach((s, i) => {
    const x = legendX[i] as number;
    out.push(
      `<rect x="${x}" y="36" width="12" height="12" fill="${COLORS[s]}"/>`,
      `<text x="${x + 18}" y="46">${esc(STRATEGY_LABELS[s])}</text>`,
    );
  });
  // Y axis, grid and ticks.
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${LEFT}" y1="${yy}" x2="${width - 10}" y2="${yy}" stroke="#e0e0e0"/>`,
      `<text x="${LEFT - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${fmt(Number(v.toFixed(6)))}</text>`,
    );
  }
  out.push(
    `<line x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${TOP + PLOT_H}" stroke="#000"/>`,
    `<line x1="${LEFT}" y1="${TOP + PLOT_H}" x2="${width - 10}" y2="${TOP + PLOT_H}" stroke="#000"/>`,
    `<text x="18" y="${TOP + PLOT_H / 2}" text-anchor="middle" transform="rotate(-90 18 ${TOP + PLOT_H / 2})">time until the program exits (s, median; whisker: min–max)</text>`,
  );
  // Bars.
  links.forEach((link, li) => {
    const gx = start + GROUP_GAP + li * (groupWidth + GROUP_GAP);
    workloads.forEach((w, wi) => {
      const wx = gx + wi * (wlWidth + WL_GAP);
      strategies.forEach((s, si) => {
        const r = rows.find(
          (row) => row.workload === w && row.strategy === s && formatLink(row.link) === link,
        );
        if (!r) return;
        const x = wx + si * (BAR + BAR_GAP);
        const yTop = y(r.seconds.median);
        const h = TOP + PLOT_H - yTop;
        const cx = x + BAR / 2;
        out.push(
          `<rect class="bar" data-workload="${esc(w)}" data-strategy="${s}" data-link="${esc(link)}" x="${x}" y="${yTop.toFixed(1)}" width="${BAR}" height="${h.toFixed(1)}" fill="${COLORS[s]}"><title>${esc(`${w} · ${link} · ${STRATEGY_LABELS[s]}: ${r.seconds.median.toFixed(2)} s, ${r.requests.median} requests`)}</title></rect>`,
        );
        if (r.runs.length > 1) {
          const y1 = y(r.seconds.min).toFixed(1);
          const y2 = y(r.seconds.max).toFixed(1);
          out.push(
            `<line x1="${cx}" y1="${y1}" x2="${cx}" y2="${y2}" stroke="#000"/>`,
            `<line x1="${cx - 5}" y1="${y1}" x2="${cx + 5}" y2="${y1}" stroke="#000"/>`,
            `<line x1="${cx - 5}" y1="${y2}" x2="${cx + 5}" y2="${y2}" stroke="#000"/>`,
          );
        }
        const labelY = Math.min(yTop, y(r.seconds.max)) - 4;
        out.push(
          `<text x="${cx}" y="${labelY.toFixed(1)}" text-anchor="middle" font-size="10">${r.seconds.median.toFixed(2)}</text>`,
        );
      });
      if (workloads.length > 1)
        out.push(
          `<text x="${wx + wlWidth / 2}" y="${TOP + PLOT_H + 18}" text-anchor="middle">${esc(w)}</text>`,
        );
    });
    out.push(
      `<text x="${gx + groupWidth / 2}" y="${TOP + PLOT_H + (workloads.length > 1 ? 40 : 20)}" text-anchor="middle" font-weight="bold">${esc(link)}</text>`,
    );
  });
  out.push(
    `<text x="${width / 2}" y="${height - 12}" text-anchor="middle" fill="#555">grouped by link (added RTT / bandwidth)</text>`,
    "</svg>",
  );
  return `${out.join("\n")}\n`;
}
