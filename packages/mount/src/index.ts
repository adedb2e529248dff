export { type MountedImage, type MountOptions, mountTarget } from "./mount.js";
export { type MergedSpan, mergeSpans, type ProfilePrefetchResult } from "./prefetch.js";
export { type MountedStore, mountStore, type StoreOptions, type StoreProfile } from "./store.js";
