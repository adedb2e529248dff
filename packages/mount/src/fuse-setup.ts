import type { FuseOptions, default as FuseType, Operations, Statfs } from "fuse-native";
import { Errno, fuseNative } from "./fuse-native.js";

/**
 * A FUSE file system at `mnt`, with the libfuse `-o` options fuse-native has no switch for
 * (use_ino, negative_timeout…). fuse-native is loaded here, when a host mounts.
 */
export class LayerFuse {
  private readonly fuse: FuseType;

  constructor(mnt: string, ops: Operations, opts: FuseOptions, extra: string[]) {
    const Fuse = fuseNative();
    class WithOptions extends Fuse {
      protected override _fuseOptions(): string {
        const base = super._fuseOptions();
        return base ? `${base},${extra.join(",")}` : `-o${extra.join(",")}`;
      }
    }
    this.fuse = new WithOptions(mnt, ops, opts);
  }

  mount(cb: (err: Error | null) => void): void {
    this.fuse.mount(cb);
  }

  unmount(cb: (err: Error | null) => void): void {
    this.fuse.unmount(cb);
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

const rofs = (...args: unknown[]) => (args[args.length - 1] as (e: number) => void)(Errno.EROFS);

/**
 * Every operation that would change a read-only file system, answered EROFS (the kernel
 * refuses most itself with `ro`; these answer what still reaches us). A file system spreads
 * it first and defines what it handles after (the layer store's `create` and `rmdir`).
 */
export const refuseWrites: Operations = {
  write: (_p, _fd, _b, _l, _pos, cb) => cb(Errno.EROFS),
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
