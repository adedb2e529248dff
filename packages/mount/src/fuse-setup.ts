import Fuse, { type FuseOptions, type Operations, type Statfs } from "fuse-native";

/** fuse-native with the libfuse `-o` options it has no switch for (use_ino, negative_timeout…). */
export class LayerFuse extends Fuse {
  constructor(
    mnt: string,
    ops: Operations,
    opts: FuseOptions,
    private readonly extra: string[],
  ) {
    super(mnt, ops, opts);
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    return base ? `${base},${this.extra.join(",")}` : `-o${this.extra.join(",")}`;
  }
}

/**
 * What the image mount and the layer store share: layers never change, so the kernel may keep
 * entries, attributes and pages for long; reads up to 1 MiB; fuse-native's per-operation
 * timeout only as a backstop (the registry client has its own timeouts and retry budget).
 */
export function layerFuseOptions(fsname: string): FuseOptions {
  return {
    fsname,
    subtype: "seekable",
    allowOther: process.getuid?.() === 0,
    kernelCache: true,
    entryTimeout: 3600,
    attrTimeout: 3600,
    maxRead: 1 << 20,
    timeout: { default: 60_000, read: 300_000, open: 300_000 },
  };
}

/** statfs: no blocks or inodes to report; `readOnly` sets ST_RDONLY. */
export function statfsReply(readOnly: boolean): Statfs {
  return {
    bsize: 4096,
    frsize: 4096,
    blocks: 0,
    bfree: 0,
    bavail: 0,
    files: 0,
    ffree: 0,
    favail: 0,
    fsid: 0,
    flag: readOnly ? 1 : 0,
    namemax: 255,
  };
}
