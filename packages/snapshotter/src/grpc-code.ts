import type { ServiceError } from "@grpc/grpc-js";

export const ALREADY_EXISTS = 6;
export const NOT_FOUND = 5;

/** A failed call's gRPC code (6 = AlreadyExists, 5 = NotFound), if it has one. */
export function grpcCode(e: unknown): number | undefined {
  return (e as ServiceError)?.code;
}
