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

const rofs = (...args: unknown[]) => (args[args.length - 1] as (e: number) => void)(Fuse.EROFS);

/**
 * Every operation that would change a read-only file system, answered EROFS (the kernel
 * refuses most itself with `ro`; these answer what still reaches us). A file system spreads
 * it first and defines what it handles after (the layer store's `create` and `rmdir`).
 */
export const refuseWrites: Operations = {
  write: (_p, _fd, _b, _l, _pos, cb) => cb(Fuse.EROFS),
  create: rofs,
  truncate: rofs,
  ftruncate: rofs,
  utimens: rofs,
  chown: rofs,
  chmod: rofs,
  mknod: rofs,
  unlink: rofs,
  rename: rofs,
  link: rofs,
  symlink: rofs,
  mkdir: rofs,
  rmdir: rofs,
  setxattr: rofs,
  removexattr: rofs,
};
