import { createRequire } from "node:module";
import { constants } from "node:os";
import { SeekableError } from "@seekable/format";
import type FuseNative from "fuse-native";

/**
 * The errno answers FUSE callbacks give (negative, as fuse-native passes them to libfuse):
 * from Node's own table, so the operations load without the native module.
 */
export const Errno = {
  ENOENT: -constants.errno.ENOENT,
  ENOTDIR: -constants.errno.ENOTDIR,
  EISDIR: -constants.errno.EISDIR,
  EINVAL: -constants.errno.EINVAL,
  EROFS: -constants.errno.EROFS,
  EACCES: -constants.errno.EACCES,
  EBADF: -constants.errno.EBADF,
  EIO: -constants.errno.EIO,
  ENODATA: -(constants.errno.ENODATA ?? 61),
} as const;

/** FUSE cannot be used on this machine: what to install, in one line. */
export class FuseUnavailableError extends SeekableError {
  override readonly name = "FuseUnavailableError";

  constructor(cause: unknown) {
    const why = ((cause as Error)?.message ?? String(cause)).split("\n")[0];
    super(
      `FUSE is not available: fuse-native could not load libfuse (${why}); install it with apt-get install -y libfuse2 fuse3`,
      "system",
    );
  }
}

let loaded: typeof FuseNative | undefined;

/**
 * fuse-native, loaded on first use and only here: a machine without libfuse2 gets one
 * line naming the package, not a loader stack trace (an ESM `import` of the failing native
 * module also leaves an uncaught rejection behind in Node 20).
 */
export function fuseNative(): typeof FuseNative {
  if (!loaded) {
    try {
      loaded = createRequire(import.meta.url)("fuse-native") as typeof FuseNative;
    } catch (e) {
      throw new FuseUnavailableError(e);
    }
  }
  return loaded;
}
