import { readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { type MountedStore, mountStore, type StoreOptions } from "@seekable/mount";
import { Metadata } from "./metadata.js";
import { service } from "./proto.js";
import { RemoteLayers } from "./remote.js";
import { snapshotsService } from "./service.js";
import { Snapshots } from "./snapshots.js";

export interface SnapshotterOptions extends StoreOptions {
  /** The unix socket containerd's proxy plugin dials. */
  address: string;
  /** State: metadata.db, snapshots/, the layer store's mount point store/. */
  root: string;
}

export interface RunningSnapshotter {
  readonly address: string;
  readonly root: string;
  /** Stops serving, unmounts the layer store, closes the database. Idempotent. */
  close(): Promise<void>;
}

/** overlayfs's index feature is off here, as containerd's overlay snapshotter sets it. */
function overlayOptions(): string[] {
  try {
    readFileSync("/sys/module/overlay/parameters/index");
    return ["index=off"];
  } catch {
    return [];
  }
}

/**
 * Serves containerd's snapshot API on `address`: local snapshots under ROOT/snapshots,
 * remote eStargz layers through the layer store mounted at ROOT/store, metadata in
 * ROOT/metadata.db.
 */
export async function startSnapshotter(opts: SnapshotterOptions): Promise<RunningSnapshotter> {
  const root = resolve(opts.root);
  const address = resolve(opts.address);
  await mkdir(join(root, "snapshots"), { recursive: true, mode: 0o700 });
  // A store left mounted by a killed process answers ENOTCONN here; mountStore clears it.
  await mkdir(join(root, "store"), { recursive: true, mode: 0o700 }).catch((e) => {
    if ((e as NodeJS.ErrnoException).code !== "ENOTCONN") throw e;
  });
  const store: MountedStore = await mountStore(join(root, "store"), opts);
  const db = new Metadata(join(root, "metadata.db"));
  const snaps = new Snapshots({
    dir: join(root, "snapshots"),
    db,
    remote: new RemoteLayers(store.dir),
    log: opts.log,
    overlayOptions: overlayOptions(),
  });
  const server = new Server();
  server.addService(
    service("containerd.services.snapshots.v1.Snapshots").service,
    snapshotsService(snaps, opts.log),
  );
  try {
    await rm(address, { force: true }); // a socket left by a killed process
    await mkdir(join(address, ".."), { recursive: true });
    await new Promise<void>((res, rej) =>
      server.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (err) =>
        err ? rej(err) : res(),
      ),
    );
  } catch (e) {
    db.close();
    await store.unmount();
    throw e;
  }
  void snaps.reopen().catch((e) => opts.log(`re-counting remote layers: ${(e as Error).message}`));
  let closing: Promise<void> | undefined;
  return {
    address,
    root,
    close() {
      closing ??= (async () => {
        await new Promise<void>((res) => server.tryShutdown(() => res()));
        db.close();
        await store.unmount();
        await rm(address, { force: true });
      })();
      return closing;
    },
  };
}
