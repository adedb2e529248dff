import type { GzipIndex } from "@seekable/format";
import { findGzipIndexes, indexSkipReason } from "@seekable/image";
import type { Descriptor, RegistryClient, Repository } from "@seekable/registry";
import { CliError } from "./errors.js";

export type GzipIndexLookup = (
  repo: Repository,
  manifestDigest: string,
  layers: Descriptor[],
  signal?: AbortSignal,
) => Promise<Map<string, GzipIndex> | undefined>;

/**
 * How reading commands and the store find gzip layer indexes (`--index auto|none`,
 * `--index-digest`); undefined with `none`. An unusable index is one warning line and the
 * layer read whole, as without an index; a failure to look is the same, never an error.
 */
export function gzipIndexLookup(
  client: () => RegistryClient,
  flags: { index?: string; indexDigest?: string },
  warn: (line: string) => void = (m) => void process.stderr.write(`seekable: ${m}\n`),
): GzipIndexLookup | undefined {
  const mode = flags.index ?? "auto";
  if (mode !== "auto" && mode !== "none")
    throw new CliError(`--index ${mode}: expected auto or none`, true);
  if (flags.indexDigest && !/^sha256:[0-9a-f]{64}$/.test(flags.indexDigest))
    throw new CliError(`--index-digest ${flags.indexDigest}: not a sha256 digest`, true);
  if (mode === "none") return undefined;
  return async (repo, manifestDigest, layers, signal) => {
    // Only an image with a plain gzip layer can have one: the others cost no request.
    if (!layers.some((l) => indexSkipReason(l, 0) === undefined)) return undefined;
    try {
      const found = await findGzipIndexes(client(), repo, manifestDigest, layers, {
        pinned: flags.indexDigest,
        signal,
      });
      for (const w of found?.warnings ?? []) warn(`warning: ${w}`);
      return found?.indexes;
    } catch (e) {
      if (signal?.aborted) throw e;
      warn(`warning: ${(e as Error).message}; gzip layers are read whole`);
      return undefined;
    }
  };
}
