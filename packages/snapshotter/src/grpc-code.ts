import type { ServiceError } from "@grpc/grpc-js";

export const ALREADY_EXISTS = 6;
export const NOT_FOUND = 5;

/** How long a call may take: a containerd that stops answering is an error, not a hang. */
export const CALL_TIMEOUT = 120_000;
/** Calls that move a layer's bytes (Prepare of a lazy layer, Apply, content Write). */
export const LAYER_TIMEOUT = 30 * 60_000;

/** A failed call's gRPC code (6 = AlreadyExists, 5 = NotFound), if it has one. */
export function grpcCode(e: unknown): number | undefined {
  return (e as ServiceError)?.code;
}
