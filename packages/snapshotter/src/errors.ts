import { status } from "@grpc/grpc-js";

/** The errdefs kinds containerd recognises in a gRPC status (errdefs.FromGRPC). */
export type SnapshotErrorKind =
  | "already-exists"
  | "not-found"
  | "failed-precondition"
  | "invalid-argument"
  | "unavailable";

const CODES: Record<SnapshotErrorKind, status> = {
  "already-exists": status.ALREADY_EXISTS,
  "not-found": status.NOT_FOUND,
  "failed-precondition": status.FAILED_PRECONDITION,
  "invalid-argument": status.INVALID_ARGUMENT,
  unavailable: status.UNAVAILABLE,
};

/** A snapshot operation refused for a reason containerd acts on (its gRPC code). */
export class SnapshotError extends Error {
  constructor(
    readonly kind: SnapshotErrorKind,
    message: string,
  ) {
    super(message);
  }

  get code(): status {
    return CODES[this.kind];
  }
}

/** An error's message on one line (the layer store's). */
export { describe } from "@seekable/mount";
