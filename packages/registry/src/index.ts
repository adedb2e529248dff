export const REGISTRY_PACKAGE = "@seekable/registry";
