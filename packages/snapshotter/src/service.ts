import {
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { describe, SnapshotError } from "./errors.js";
import { timestamp } from "./proto.js";
import type { Info, Snapshots } from "./snapshots.js";

const KINDS = { view: "VIEW", active: "ACTIVE", committed: "COMMITTED" } as const;

interface WireInfo {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

function wire(i: Info) {
  return {
    name: i.name,
    parent: i.parent,
    kind: KINDS[i.kind],
    labels: i.labels,
    created_at: timestamp(i.created),
    updated_at: timestamp(i.updated),
  };
}

/** Containers' answers: a SnapshotError keeps its code; anything else is UNKNOWN with its message. */
function fail(e: unknown) {
  if (e instanceof SnapshotError) return { code: e.code, details: e.message };
  return { code: status.UNKNOWN, details: describe(e) };
}

type Handler<Req> = (req: Req) => unknown | Promise<unknown>;

function unary<Req>(fn: Handler<Req>) {
  return (call: ServerUnaryCall<Req, unknown>, cb: sendUnaryData<unknown>) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (r) => cb(null, r ?? {}),
        (e) => cb(fail(e)),
      );
  };
}

/**
 * containerd.services.snapshots.v1.Snapshots over `snaps`. Keys arrive as containerd's
 * metadata layer names them (`NS/N/KEY`); the `snapshotter` field is containerd's own routing
 * and is ignored.
 */
export function snapshotsService(
  snaps: Snapshots,
  log: (line: string) => void,
): UntypedServiceImplementation {
  const labelled = (l: Record<string, string> | undefined) => ({ ...(l ?? {}) });
  return {
    Prepare: unary(async (r: { key: string; parent: string; labels: Record<string, string> }) => ({
      mounts: await snaps.prepare(r.key, r.parent, labelled(r.labels)),
    })),
    View: unary((r: { key: string; parent: string; labels: Record<string, string> }) => ({
      mounts: snaps.view(r.key, r.parent, labelled(r.labels)),
    })),
    Mounts: unary((r: { key: string }) => ({ mounts: snaps.mounts(r.key) })),
    Commit: unary(async (r: { name: string; key: string; labels: Record<string, string> }) => {
      await snaps.commit(r.name, r.key, labelled(r.labels));
    }),
    Remove: unary(async (r: { key: string }) => {
      await snaps.remove(r.key);
    }),
    Stat: unary((r: { key: string }) => ({ info: wire(snaps.stat(r.key)) })),
    Update: unary((r: { info?: WireInfo; update_mask?: { paths?: string[] } }) => {
      if (!r.info) throw new SnapshotError("invalid-argument", "Update without info");
      const info: Info = {
        ...r.info,
        kind: "committed",
        labels: labelled(r.info.labels),
        created: 0,
        updated: 0,
      };
      return { info: wire(snaps.update(info, r.update_mask?.paths ?? [])) };
    }),
    List(call: ServerWritableStream<{ filters?: string[] }, unknown>) {
      try {
        const infos = snaps.list(call.request.filters ?? []);
        // Batches, as containerd's own service sends them (under gRPC's message size limit).
        for (let i = 0; i < infos.length; i += 100) {
          call.write({ info: infos.slice(i, i + 100).map(wire) });
        }
        call.end();
      } catch (e) {
        log(`List: ${describe(e)}`);
        call.destroy(Object.assign(new Error(describe(e)), fail(e)));
      }
    },
    Usage: unary(async (r: { key: string }) => snaps.usage(r.key)),
    Cleanup: unary(async () => {
      await snaps.cleanup();
    }),
  };
}
