import { cleanEntryName } from "@seekable/format";
import type { ImageFS, MergedNode } from "@seekable/reader";
import type { Operations, Stat } from "fuse-native";
import { type Inodes, resolved, statOf } from "./attr.js";
import type { Content } from "./content.js";
import { Errno } from "./fuse-native.js";
import { refuseWrites, statfsReply } from "./fuse-setup.js";
import type { FirstReadListener } from "./guess/guessing.js";
import { ReadAhead } from "./read-ahead.js";
import type { AccessRecorder } from "./record.js";

export interface OpsContext {
  fs: ImageFS;
  content: Content;
  inodes: Inodes;
  recorder?: AccessRecorder;
  /** One line about a failed read (the read itself gets EIO). */
  onError(path: string, e: unknown): void;
  readAhead?: number;
  /** Told of each file's first read: the guessers of what the program reads next. */
  firstReads?: FirstReadListener;
}

interface Handle {
  m: MergedNode;
  ra: ReadAhead;
}

const O_ACCMODE = 3; // O_RDONLY is 0
const O_TRUNC = 0o1000;

/** The FUSE operations of a read-only image: metadata from the TOC, contents read lazily. */
export function fuseOperations(ctx: OpsContext): Operations {
  const stats = new WeakMap<MergedNode, Stat>();
  const handles = new Map<number, Handle>();
  let nextFd = 1;

  const find = (path: string): MergedNode | undefined => ctx.fs.lookup(cleanEntryName(path));
  const statFor = (m: MergedNode): Stat => {
    let s = stats.get(m);
    if (!s) {
      s = statOf(m, ctx.inodes);
      stats.set(m, s);
    }
    return s;
  };
  const xattrsOf = (m: MergedNode): Record<string, string> => resolved(m.node).xattrs ?? {};

  return {
    ...refuseWrites,
    getattr(path, cb) {
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      cb(0, statFor(m));
    },
    fgetattr(path, fd, cb) {
      const m = handles.get(fd)?.m ?? find(path);
      if (!m) return cb(Errno.ENOENT);
      cb(0, statFor(m));
    },
    readdir(path, cb) {
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      if (!m.children) return cb(Errno.ENOTDIR);
      cb(0, [".", "..", ...m.children.keys()]);
    },
    readlink(path, cb) {
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      if (m.node.type !== "symlink") return cb(Errno.EINVAL);
      cb(0, m.node.linkName);
    },
    open(path, flags, cb) {
      if ((flags & O_ACCMODE) !== 0 || flags & O_TRUNC) return cb(Errno.EROFS);
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      if (m.children) return cb(Errno.EISDIR);
      const n = resolved(m.node);
      if (n.type !== "reg") return cb(Errno.EACCES);
      ctx.recorder?.opened(m.node.path);
      const fd = nextFd++;
      handles.set(fd, { m, ra: new ReadAhead(ctx.content, m, n.size, ctx.readAhead) });
      cb(0, fd);
    },
    release(_path, fd, cb) {
      handles.delete(fd);
      cb(0);
    },
    read(path, fd, buf, len, pos, cb) {
      const h = handles.get(fd);
      const m = h?.m ?? find(path);
      if (!m) return cb(Errno.EBADF);
      const done = (n: number) => {
        h?.ra.observe(pos, pos + n);
        cb(n);
      };
      const failed = (e: unknown) => {
        ctx.onError(m.node.path, e);
        cb(Errno.EIO);
      };
      try {
        const n = ctx.content.read(m, buf, len, pos);
        // After the read is under way, so that a guesser's look at the head joins it.
        if (pos === 0) ctx.firstReads?.firstRead(m);
        if (typeof n === "number") done(n);
        else n.then(done, failed);
      } catch (e) {
        failed(e);
      }
    },
    getxattr(path, name, _position, cb) {
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      const v = xattrsOf(m)[name];
      if (v === undefined) return cb(Errno.ENODATA);
      cb(0, Buffer.from(v, "base64"));
    },
    listxattr(path, cb) {
      const m = find(path);
      if (!m) return cb(Errno.ENOENT);
      cb(0, Object.keys(xattrsOf(m)));
    },
    statfs: (_path, cb) => cb(0, statfsReply(true)),
  };
}
