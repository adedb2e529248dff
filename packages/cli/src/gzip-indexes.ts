import { findGzipIndexes } from "@seekable/image";
import type { RemoteOpenOptions } from "@seekable/reader";
import type { RegistryClient, Repository } from "@seekable/registry";
import { CliError } from "./errors.js";

/**
 * How reading commands find gzip layer indexes (`--index auto|none`, `--index-digest`):
 * a resolver for openImage. An unusable index is one warning line on stderr and the layer
 * read whole, as without an index; a failure to look is the same, never an error.
 */
export function gzipIndexResolver(
  client: () => RegistryClient,
  repo: () => Repository | undefined,
  flags: { index?: string; indexDigest?: string },
): RemoteOpenOptions["gzipIndexes"] {
  const mode = flags.index ?? "auto";
  if (mode !== "auto" && mode !== "none")
    throw new CliError(`--index ${mode}: expected auto or none`, true);
  if (flags.indexDigest && !/^sha256:[0-9a-f]{64}$/.test(flags.indexDigest))
    throw new CliError(`--index-digest ${flags.indexDigest}: not a sha256 digest`, true);
  if (mode === "none") return undefined;
  return async (manifestDigest, layers, signal) => {
    const r = repo();
    if (!r) return undefined;
    const warn = (m: string): void => void process.stderr.write(`seekable: warning: ${m}\n`);
    try {
      const found = await findGzipIndexes(client(), r, manifestDigest, layers, {
        pinned: flags.indexDigest,
        signal,
      });
      for (const w of found?.warnings ?? []) warn(w);
      return found?.indexes;
    } catch (e) {
      if (signal?.aborted) throw e;
      warn(`${(e as Error).message}; gzip layers are read whole`);
      return undefined;
    }
  };
}
