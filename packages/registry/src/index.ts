export { unionScopes } from "./auth.js";
export {
  type BlobInfo,
  fetchBlob,
  type GetBlobOptions,
  getBlob,
  headBlob,
  type RangeReadOptions,
  type RangeReadResult,
  type Repository,
  readBlobRanges,
} from "./blob.js";
export { type BlobSourceOptions, DEFAULT_GAP, RegistryBlobSource } from "./blob-source.js";
export { RegistryClient, type RegistryClientOptions } from "./client.js";
export { coalesce, mergeSpans, type Span } from "./coalesce.js";
export {
  type ContentRange,
  type HttpRange,
  parseContentRange,
  rangeHeader,
} from "./content-range.js";
export {
  type CredentialSource,
  type Credentials,
  type DockerConfigOptions,
  dockerConfigCredentials,
  parseCredentials,
  runCredentialHelper,
} from "./credentials.js";
export { digestOf } from "./digest.js";
export {
  isRegistryError,
  RegistryError,
  type RegistryErrorKind,
  type RegistryErrorOptions,
} from "./errors.js";
export { type Limit, limiter } from "./limit.js";
export {
  checkImageLayers,
  getImageManifest,
  getManifest,
  headManifest,
  type ImageManifestResult,
  MAX_IMAGE_BYTES,
  MAX_IMAGE_LAYERS,
  type ManifestJson,
  type ManifestOptions,
  type ManifestResult,
  putManifest,
} from "./manifest.js";
export { isImageManifestMediaType, isIndexMediaType, MediaType } from "./media-types.js";
export { type BytePart, byterangesBoundary, MultipartError, parseByteranges } from "./multipart.js";
export {
  type Descriptor,
  formatPlatform,
  type Platform,
  parsePlatform,
  selectPlatform,
} from "./platform.js";
export {
  formatReference,
  formatRepository,
  isLoopbackHost,
  manifestTarget,
  type ParseReferenceOptions,
  parseBlobUrl,
  parseReference,
  type Reference,
  registryHost,
  withTarget,
} from "./reference.js";
export {
  addReferrer,
  listReferrers,
  type Referrers,
  type ReferrersOptions,
  type ReferrersVia,
  referrersTag,
} from "./referrers.js";
export {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableStatus,
  parseRetryAfter,
  type RetryPolicy,
} from "./retry.js";
export type { RegistryStats } from "./stats.js";
export {
  type BlobData,
  type PushBlobOptions,
  type PushBlobResult,
  pushBlob,
  StreamingUpload,
  type StreamingUploadOptions,
} from "./upload.js";
export { type Challenge, parseWwwAuthenticate } from "./www-authenticate.js";
