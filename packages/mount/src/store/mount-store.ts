import { hostFuse } from "../host.js";
import { LayerStore, type StoreOptions } from "./layer-store.js";
import { storeOperations } from "./operations.js";

export interface MountedStore {
  readonly dir: string;
  /** Detaches the mount. Idempotent. */
  unmount(): Promise<void>;
}

/** Mounts the store at DIR (a stale mount there is cleared first); resolves once served. */
export async function mountStore(dir: string, opts: StoreOptions): Promise<MountedStore> {
  const store = new LayerStore(opts);
  let sweeper: NodeJS.Timeout | undefined;
  // use_ino, negative_timeout: layers never change, so a name that is not there stays so
  // (overlayfs asks every lower layer for each name a program probes). Not `ro`: podman
  // creates `use` and removes layer directories.
  const host = await hostFuse(dir, storeOperations(store), {
    fsname: "seekable-store",
    extra: ["use_ino", "negative_timeout=3600"],
    log: opts.log,
    beforeUnmount: () => {
      clearInterval(sweeper);
      store.close();
    },
  });
  // Idle layers are looked for a few times per release period (at least every 30 s).
  sweeper = setInterval(
    () => store.sweep(),
    Math.max(100, Math.min(30_000, store.releaseAfterMs / 4)),
  );
  sweeper.unref();
  return host;
}
