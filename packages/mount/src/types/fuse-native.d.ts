// Types for fuse-native 2.2.6 (it ships none): the parts seekable uses.
declare module "fuse-native" {
  type Cb<T extends unknown[] = []> = (err: number, ...rest: T) => void;

  export interface Stat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    dev?: number;
    nlink: number;
    ino: number;
    rdev?: number;
    blksize?: number;
    blocks?: number;
    /** Milliseconds since the epoch, or a Date. */
    atime: number | Date;
    mtime: number | Date;
    ctime: number | Date;
  }

  export interface Statfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  export interface Operations {
    init?(cb: Cb): void;
    statfs?(path: string, cb: Cb<[Statfs?]>): void;
    getattr?(path: string, cb: Cb<[Stat?]>): void;
    fgetattr?(path: string, fd: number, cb: Cb<[Stat?]>): void;
    access?(path: string, mode: number, cb: Cb): void;
    readdir?(path: string, cb: Cb<[string[]?, Stat[]?]>): void;
    readlink?(path: string, cb: Cb<[string?]>): void;
    open?(path: string, flags: number, cb: Cb<[number?]>): void;
    opendir?(path: string, flags: number, cb: Cb<[number?]>): void;
    release?(path: string, fd: number, cb: Cb): void;
    releasedir?(path: string, fd: number, cb: Cb): void;
    read?(
      path: string,
      fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (bytesOrErr: number) => void,
    ): void;
    write?(
      path: string,
      fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (bytesOrErr: number) => void,
    ): void;
    getxattr?(path: string, name: string, position: number, cb: Cb<[Buffer?]>): void;
    listxattr?(path: string, cb: Cb<[string[]?]>): void;
    setxattr?(
      path: string,
      name: string,
      value: Buffer,
      position: number,
      flags: number,
      cb: Cb,
    ): void;
    removexattr?(path: string, name: string, cb: Cb): void;
    create?(path: string, mode: number, cb: Cb<[number?]>): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    mknod?(path: string, mode: number, dev: number, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    symlink?(src: string, dest: string, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: Cb): void;
  }

  export interface FuseOptions {
    debug?: boolean;
    force?: boolean;
    mkdir?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    entryTimeout?: number;
    attrTimeout?: number;
    /** Milliseconds per operation before fuse-native answers ETIMEDOUT (default 15 s). */
    timeout?: number | false | Record<string, number | false>;
  }

  export default class Fuse {
    constructor(mnt: string, ops: Operations, opts?: FuseOptions);
    readonly mnt: string;
    readonly opts: FuseOptions;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    /** The `-o a,b,c` argument fuse-native passes to libfuse. */
    protected _fuseOptions(): string;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static readonly EPERM: number;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly EBADF: number;
    static readonly EACCES: number;
    static readonly ENOTDIR: number;
    static readonly EISDIR: number;
    static readonly EINVAL: number;
    static readonly EROFS: number;
    static readonly ENOSYS: number;
    static readonly ENODATA: number;
    static readonly ERANGE: number;
    static readonly ENOTCONN: number;
    static readonly EOPNOTSUPP: number;
  }
}
