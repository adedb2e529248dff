import { open, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe } from "./errors.js";
import { type RemoteLayer, storePath } from "./labels.js";

/**
 * Remote layers as directories of the layer store mounted at `dir` (the one `seekable store`
 * serves podman): `<base64 ref>/<digest>/diff` is the layer's files, served lazily. A layer
 * is counted in use (`use` created) while a snapshot stands on it, as podman does.
 */
export class RemoteLayers {
  constructor(readonly dir: string) {}

  /** The layer's files, for overlayfs. */
  diff(path: string): string {
    return join(this.dir, path, "diff");
  }

  /**
   * Resolves the layer through the store (its manifest fetched, its footer and TOC fetched
   * and verified against the TOC digest) and counts it in use; its store path, or the reason
   * it cannot be served lazily.
   */
  async open(l: RemoteLayer): Promise<string> {
    const path = storePath(l.refText, l.digest);
    try {
      await stat(this.diff(path));
    } catch (e) {
      throw new Error(
        `layer ${l.digest} of ${l.refText}: ${describe(e)} (see the store's line above)`,
      );
    }
    await this.use(path);
    return path;
  }

  /** Counts the layer in use (the store answers ENOENT after counting, as the reference). */
  async use(path: string): Promise<void> {
    try {
      const fh = await open(join(this.dir, path, "use"), "w");
      await fh.close();
    } catch {
      // ENOENT is the store's answer once counted.
    }
  }

  /** One use less (the store answers ENOENT after uncounting). */
  async release(path: string): Promise<void> {
    await rmdir(join(this.dir, path)).catch(() => {});
  }
}
