export {
  type BenchOptions,
  type BenchResult,
  ContentMismatchError,
  runBench,
  type WorkloadSpec,
} from "./bench.js";
export { recordStart } from "./record.js";
export { formatBytes, markdownTable } from "./report.js";
export { type LinkSetting, type ShapingProxy, startShapingProxy } from "./shaping-proxy.js";
export { isStrategyName, StrategyError, type StrategyName } from "./strategies.js";
export { svgChart } from "./svg-chart.js";
