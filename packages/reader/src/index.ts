export * from "./batch-read.js";
export * from "./chunk-cache.js";
export * from "./counting-source.js";
export * from "./image-fs.js";
export * from "./layer-view.js";
export * from "./remote.js";
export * from "./stats.js";
export * from "./whole-layer.js";
