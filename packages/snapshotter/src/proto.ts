import { fileURLToPath } from "node:url";
import {
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

/** containerd's API definitions, vendored with their gogoproto options removed (same wire format). */
const PROTO_DIR = fileURLToPath(new URL("../proto", import.meta.url));
const API = "github.com/containerd/containerd/api/services";

let loaded: GrpcObject | undefined;

/** containerd's services (snapshots, content, images, leases, diff), loaded once. */
export function containerdApi(): GrpcObject {
  loaded ??= loadPackageDefinition(
    loadSync(
      ["snapshots", "content", "images", "leases", "diff"].map((s) => `${API}/${s}/v1/${s}.proto`),
      { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String, defaults: true },
    ),
  );
  return loaded;
}

/** A service of containerd's API by its full name, e.g. `containerd.services.snapshots.v1.Snapshots`. */
export function service(name: string): ServiceClientConstructor {
  let o: unknown = containerdApi();
  for (const part of name.split(".")) o = (o as Record<string, unknown>)[part];
  if (typeof o !== "function") throw new Error(`no service ${name} in containerd's API`);
  return o as ServiceClientConstructor;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export function timestamp(ms: number): Timestamp {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
