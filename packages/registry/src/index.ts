export * from "./auth.js";
export * from "./blob.js";
export * from "./blob-source.js";
export {
  type HostQuirks,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryRequest,
  type RegistryResponse,
  type Timeouts,
} from "./client.js";
export * from "./coalesce.js";
export * from "./content-range.js";
export * from "./credentials.js";
export * from "./digest.js";
export * from "./errors.js";
export * from "./limit.js";
export * from "./manifest.js";
export * from "./media-types.js";
export * from "./multipart.js";
export * from "./platform.js";
export * from "./reference.js";
export * from "./referrers.js";
export * from "./retry.js";
export * from "./stats.js";
export * from "./upload.js";
export * from "./www-authenticate.js";
