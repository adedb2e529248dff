import type { Node } from "@seekable/format";
import type { MergedNode } from "@seekable/reader";
import type { Stat } from "fuse-native";

const S_IFMT: Record<Node["type"], number> = {
  dir: 0o040000,
  reg: 0o100000,
  symlink: 0o120000,
  hardlink: 0o100000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

/** The node holding a hardlink's metadata and content (the node itself otherwise). */
export function resolved(node: Node): Node {
  return node.target ?? node;
}

/** glibc's makedev, in the 32 bits fuse-native passes (majors < 4096, minors < 2^20). */
export function makedev(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}

/**
 * Stable inode numbers: one per content node, so the paths of a hardlink set share one
 * (reported to the kernel with libfuse's `use_ino`).
 */
export class Inodes {
  private readonly ids = new WeakMap<Node, number>();
  private next = 2; // 1 is the root, as on most file systems

  of(node: Node): number {
    const n = resolved(node);
    if (n.path === "") return 1;
    let id = this.ids.get(n);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(n, id);
    }
    return id;
  }
}

function millis(modtime: string): number {
  const t = modtime ? Date.parse(modtime) : 0;
  return Number.isFinite(t) ? t : 0;
}

/** stat(2) of a merged node as the TOC describes it (type bits added to the mode). */
export function statOf(m: MergedNode, inodes: Inodes): Stat {
  const n = resolved(m.node);
  const type = n.type === "hardlink" ? "reg" : n.type;
  const size = type === "reg" ? n.size : type === "symlink" ? Buffer.byteLength(n.linkName) : 0;
  let nlink = n.numLink || 1;
  if (m.children) {
    // Directories: "." and the parent's entry, plus each subdirectory's "..".
    nlink = 2;
    for (const c of m.children.values()) if (c.children) nlink++;
  }
  const time = millis(n.modtime);
  return {
    mode: S_IFMT[type] | (n.mode & 0o7777),
    uid: n.uid,
    gid: n.gid,
    size,
    nlink,
    ino: inodes.of(m.node),
    rdev: type === "char" || type === "block" ? makedev(n.devMajor, n.devMinor) : 0,
    blksize: 4096,
    blocks: Math.ceil(size / 512),
    atime: time,
    mtime: time,
    ctime: time,
  };
}

/** stat(2) of a directory the layer store makes up (root, an image, a layer): read-only, root's. */
export function syntheticDirStat(ino: number, mode = 0o500): Stat {
  return { ...syntheticStat(ino, 0), mode: 0o040000 | mode, nlink: 2 };
}

/** stat(2) of a file the layer store makes up (`info`, `blob`): read-only, root's, epoch times. */
export function syntheticFileStat(ino: number, size: number): Stat {
  return syntheticStat(ino, size);
}

function syntheticStat(ino: number, size: number): Stat {
  return {
    mode: 0o100400,
    uid: 0,
    gid: 0,
    size,
    nlink: 1,
    ino,
    rdev: 0,
    blksize: 4096,
    blocks: Math.ceil(size / 512),
    atime: 0,
    mtime: 0,
    ctime: 0,
  };
}
