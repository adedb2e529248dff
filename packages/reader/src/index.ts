export { type BatchReadOptions, type FileRef, readFiles } from "./batch-read.js";
export {
  ByteLru,
  type DiskCacheOptions,
  DiskChunkCache,
  defaultCacheDir,
  MemoryChunkCache,
  sessionCache,
  TieredChunkCache,
} from "./chunk-cache.js";
export { CountingSource } from "./counting-source.js";
export { ImageFS, type MergedNode } from "./image-fs.js";
export { IndexedLayer } from "./indexed-layer.js";
export type { LayerView } from "./layer-view.js";
export {
  type LayerLocation,
  LayerNotFoundError,
  type LayerOpenOptions,
  type LocalLayer,
  type OpenedLayer,
  type OpenedTarget,
  openEStargzBlob,
  openImage,
  openLocalLayer,
  openLocation,
  openRemoteLayer,
  type RemoteImage,
  type RemoteLayer,
  type RemoteOpenOptions,
  TOC_DIGEST_ANNOTATION,
  tailSizeFor,
} from "./remote.js";
export { ReadStats } from "./stats.js";
export { WholeLayer } from "./whole-layer.js";
