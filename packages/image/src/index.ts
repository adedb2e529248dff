export * from "./layout-server.js";
export * from "./oci-layout.js";
