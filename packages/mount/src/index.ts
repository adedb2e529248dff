export { describe } from "./host.js";
export { type MountedImage, type MountOptions, mountTarget } from "./mount.js";
export type { ProfilePrefetchResult } from "./prefetch.js";
export type { StoreOptions, StoreProfile } from "./store/layer-store.js";
export { type MountedStore, mountStore } from "./store/mount-store.js";
