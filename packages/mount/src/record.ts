import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * `--record FILE`: the regular files opened under the mount, in first-access order, one
 * path a line as `convert --prioritized-files` reads them. Written at unmount under a
 * temporary name and renamed, so FILE is complete or absent.
 */
export class AccessRecorder {
  private readonly seen = new Set<string>();

  /** `path` as the image names it (no leading slash). */
  opened(path: string): void {
    this.seen.add(path);
  }

  get paths(): string[] {
    return [...this.seen];
  }

  async write(file: string): Promise<void> {
    const tmp = join(
      dirname(file),
      `.${basename(file)}.seekable-${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
    );
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(this.paths.map((p) => `${p}\n`).join(""));
      await fh.sync();
      await fh.close();
      await rename(tmp, file);
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
