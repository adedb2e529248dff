export {
  type ConvertImageOptions,
  type ConvertImageResult,
  convertImage,
  LayerError,
  type LayerRecord,
} from "./convert-image.js";
export {
  DEFAULT_MIN_LAYER_SIZE,
  type FoundIndexes,
  findGzipIndexes,
  GZIP_INDEX_ARTIFACT_TYPE,
  type IndexedLayer,
  type IndexImageOptions,
  type IndexImageResult,
  indexImage,
  indexSkipReason,
} from "./gzip-index-artifact.js";
export { type ImageRef, ImageRefError, isImageRef, parseImageRef } from "./image-ref.js";
export { LayoutServer, parseRanges } from "./layout-server.js";
export { isEstargzLayer } from "./manifest-rewrite.js";
export { OciLayout } from "./oci-layout.js";
export {
  decodeProfile,
  type FoundProfile,
  findProfile,
  MAX_PROFILE_BYTES,
  newestReferrer,
  PROFILE_ARTIFACT_TYPE,
  ProfileError,
  type PushedProfile,
  parseProfile,
  pushProfile,
} from "./profile.js";
export type { ImageSink, LayerSink } from "./sink.js";
export { OciSink, SinkError } from "./sink-oci.js";
export { RegistrySink } from "./sink-registry.js";
export { type ImageSource, type RawManifest, verifying } from "./source.js";
export { DockerArchiveSource } from "./source-docker-archive.js";
export { OciSource } from "./source-oci.js";
export { RegistrySource } from "./source-registry.js";
