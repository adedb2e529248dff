export * from "./chunks.js";
export * from "./mount.js";
export * from "./prefetch.js";
export * from "./record.js";
export * from "./stale-mount.js";
export * from "./store.js";
export * from "./store-layer.js";
