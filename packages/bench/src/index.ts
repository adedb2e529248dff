export * from "./bench.js";
export * from "./extract.js";
export * from "./prepare.js";
export * from "./report.js";
export * from "./shaping-proxy.js";
export * from "./strategies.js";
export * from "./svg-chart.js";
