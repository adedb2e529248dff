import { formatReference } from "@seekable/registry";
import type { Operations } from "fuse-native";
import { syntheticDirStat, syntheticFileStat } from "../attr.js";
import { Errno } from "../fuse-native.js";
import { refuseWrites, statfsReply } from "../fuse-setup.js";
import { describe } from "../host.js";
import type { ImageEntry, LayerEntry, LayerStore } from "./layer-store.js";

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** What a path under the store names. */
export type StorePath =
  | { kind: "root" }
  | { kind: "image"; img: ImageEntry }
  | { kind: "layer"; img: ImageEntry; digest: string }
  | { kind: "info"; img: ImageEntry; digest: string }
  | { kind: "blob"; img: ImageEntry; digest: string }
  /** Below diff/: `inner` is the path inside the layer ("/" for diff itself). */
  | { kind: "diff"; img: ImageEntry; digest: string; inner: string };

/**
 * Splits a store path `/<base64 ref>/<digest>/{diff/…,info,blob}`; an errno when it names
 * nothing the store can have (EINVAL: not a reference or digest, as the reference answers).
 */
export function parseStorePath(
  path: string,
  image: (name: string) => ImageEntry | undefined,
): StorePath | number {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) return { kind: "root" };
  const img = image(parts[0]);
  if (!img) return Errno.EINVAL;
  if (parts.length === 1) return { kind: "image", img };
  const digest = parts[1];
  if (!DIGEST.test(digest)) return Errno.EINVAL;
  if (parts.length === 2) return { kind: "layer", img, digest };
  const entry = parts[2];
  if (entry === "diff") return { kind: "diff", img, digest, inner: `/${parts.slice(3).join("/")}` };
  if (parts.length > 3) return Errno.ENOTDIR;
  if (entry === "info") return { kind: "info", img, digest };
  if (entry === "blob") return { kind: "blob", img, digest };
  return Errno.ENOENT;
}

type LayerPath = Extract<StorePath, { digest: string }>;

/** The FUSE operations of the store: its own directories, `info` and `blob`; diff/ is the layer's. */
export function storeOperations(store: LayerStore): Operations {
  const handles = new Map<number, { kind: "blob" | "info"; data?: Buffer; layer?: LayerEntry }>();
  /** Files open under diff/: the store's fd -> the layer's operations and their own fd. */
  const layerFds = new Map<
    number,
    { ops: Operations; fd: number; inner: string; layer: LayerEntry }
  >();
  let nextFd = 1;
  const parse = (path: string) => parseStorePath(path, (name) => store.image(name));

  /** Runs `fn` with the layer of a parsed path; EIO (one line) when unresolvable. */
  const withLayer = (p: LayerPath, cb: (code: number) => void, fn: (l: LayerEntry) => void) => {
    store.layer(p.img, p.digest).then(fn, (e) => {
      store.report(`layer ${formatReference(p.img.ref)} ${p.digest}: ${describe(e)}`);
      cb(Errno.EIO);
    });
  };

  return {
    ...refuseWrites,
    getattr(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      switch (p.kind) {
        case "root":
          return cb(0, syntheticDirStat(1));
        case "image":
        case "layer":
          return cb(0, syntheticDirStat(store.ino(path)));
        case "info":
          store.info(p.img, p.digest).then(
            (data) => cb(0, syntheticFileStat(store.ino(path), data.length)),
            (e) => {
              store.report(`info of ${p.digest}: ${describe(e)}`);
              cb(Errno.EIO);
            },
          );
          return;
        case "blob":
          return withLayer(p, cb, (l) => cb(0, syntheticFileStat(store.ino(path), l.source.size)));
        case "diff":
          return withLayer(p, cb, (l) =>
            (l.ops.getattr as NonNullable<Operations["getattr"]>)(p.inner, cb),
          );
      }
    },
    fgetattr(path, fd, cb) {
      const f = layerFds.get(fd);
      if (f?.ops.fgetattr) return f.ops.fgetattr(f.inner, f.fd, cb);
      (this.getattr as NonNullable<Operations["getattr"]>)(path, cb);
    },
    readdir(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      switch (p.kind) {
        case "root":
        case "image":
          return cb(0, [".", ".."]);
        case "layer":
          return cb(0, [".", "..", "diff", "info", "blob"]);
        case "diff":
          return withLayer(p, cb, (l) =>
            (l.ops.readdir as NonNullable<Operations["readdir"]>)(p.inner, cb),
          );
        default:
          return cb(Errno.ENOTDIR);
      }
    },
    readlink(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.kind !== "diff") return cb(Errno.EINVAL);
      withLayer(p, cb, (l) => (l.ops.readlink as NonNullable<Operations["readlink"]>)(p.inner, cb));
    },
    open(path, flags, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.kind === "root" || p.kind === "image" || p.kind === "layer") return cb(Errno.EISDIR);
      if ((flags & 3) !== 0) return cb(Errno.EROFS);
      if (p.kind === "info") {
        store.info(p.img, p.digest).then(
          (data) => {
            const fd = nextFd++;
            handles.set(fd, { kind: "info", data });
            cb(0, fd);
          },
          () => cb(Errno.EIO),
        );
        return;
      }
      if (p.kind === "blob") {
        return withLayer(p, cb, (l) => {
          const fd = nextFd++;
          handles.set(fd, { kind: "blob", layer: l });
          store.opened(l, 1);
          cb(0, fd);
        });
      }
      const inner = p.inner;
      withLayer(p, cb, (l) => {
        (l.ops.open as NonNullable<Operations["open"]>)(inner, flags, (code, innerFd) => {
          if (code !== 0 || innerFd === undefined) return cb(code);
          const fd = nextFd++;
          layerFds.set(fd, { ops: l.ops, fd: innerFd, inner, layer: l });
          store.opened(l, 1);
          cb(0, fd);
        });
      });
    },
    release(_path, fd, cb) {
      const h = handles.get(fd);
      if (h) {
        handles.delete(fd);
        if (h.layer) store.opened(h.layer, -1);
        return cb(0);
      }
      const f = layerFds.get(fd);
      layerFds.delete(fd);
      if (f) store.opened(f.layer, -1);
      if (f?.ops.release) return f.ops.release(f.inner, f.fd, cb);
      cb(0);
    },
    read(_path, fd, buf, len, pos, cb) {
      const h = handles.get(fd);
      if (h?.kind === "info") {
        const data = h.data as Buffer;
        const n = Math.max(0, Math.min(len, data.length - pos));
        if (n > 0) data.copy(buf, 0, pos, pos + n);
        return cb(n);
      }
      if (h?.kind === "blob") {
        const l = h.layer as LayerEntry;
        const n = Math.max(0, Math.min(len, l.source.size - pos));
        if (n === 0) return cb(0);
        l.source.read([{ offset: pos, length: n }]).then(
          ([data]) => {
            buf.set(data.subarray(0, n), 0);
            cb(Math.min(n, data.length));
          },
          (e) => {
            store.report(`read of ${l.desc.digest}/blob failed: ${describe(e)}`);
            cb(Errno.EIO);
          },
        );
        return;
      }
      const f = layerFds.get(fd);
      if (!f?.ops.read) return cb(Errno.EBADF);
      f.ops.read(f.inner, f.fd, buf, len, pos, cb);
    },
    getxattr(path, name, position, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.kind !== "diff") return cb(Errno.ENODATA);
      withLayer(p, cb, (l) =>
        (l.ops.getxattr as NonNullable<Operations["getxattr"]>)(p.inner, name, position, cb),
      );
    },
    listxattr(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.kind !== "diff") return cb(0, []);
      withLayer(p, cb, (l) =>
        (l.ops.listxattr as NonNullable<Operations["listxattr"]>)(p.inner, cb),
      );
    },
    statfs: (_path, cb) => cb(0, statfsReply(false)),
    // containers/storage creates `use` while it uses a layer and removes the layer directory
    // when done; both are answered ENOENT after counting, as the reference does.
    create(path, _mode, cb) {
      const parts = path.split("/").filter((x) => x !== "");
      if (parts.length === 3 && parts[2] === "use") {
        const p = parse(parts.slice(0, 2).join("/"));
        if (typeof p === "number") return cb(p);
        if (p.kind !== "layer") return cb(Errno.EROFS);
        store.use(p.img, p.digest);
        return cb(Errno.ENOENT);
      }
      cb(Errno.EROFS);
    },
    rmdir(path, cb) {
      const p = parse(path);
      if (typeof p === "number") return cb(p);
      if (p.kind === "layer") {
        store.release(p.img, p.digest);
        return cb(Errno.ENOENT);
      }
      cb(Errno.EROFS);
    },
  };
}
