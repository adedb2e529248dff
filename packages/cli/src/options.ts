import { type Command, InvalidArgumentError } from "commander";

// Options shared by several commands, each defined once: a command takes a group by passing
// itself through the builder (`cacheOptions(registryOptions(program.command("x")))`), and
// finds the values under the names of ReadingFlags (target.ts).

/** The BLOB argument of the reading commands (the CLI contract). */
export const BLOB_HELP =
  "a local eStargz/stargz file, http(s)://HOST/v2/NAME/blobs/DIGEST, or docker://REF";

/** --creds and --plain-http: every command that talks to a registry. */
export function registryOptions(cmd: Command): Command {
  return cmd
    .option(
      "--creds <user:pass>",
      "registry credentials (default: ~/.docker/config.json, then anonymous)",
    )
    .option(
      "--plain-http",
      "use http:// for the registry (default only for localhost and 127.0.0.0/8)",
    );
}

/** --cache-dir and --no-cache: every command that reads chunks of remote blobs. */
export function cacheOptions(cmd: Command): Command {
  return cmd
    .option(
      "--cache-dir <dir>",
      "chunk cache directory (default $XDG_CACHE_HOME/seekable for remote blobs)",
    )
    .option("--no-cache", "do not use the on-disk chunk cache");
}

/** --stats: the reading counters as one JSON line on stderr at exit (the CLI contract). */
export function statsOption(cmd: Command): Command {
  return cmd.option(
    "--stats",
    'print {"requests","bytesFetched","bytesServedFromCache",...} on stderr at exit',
  );
}

/** The options of the layer store's hosts (`store`, `snapshotter`): registry, statistics, cache. */
export function layerStoreOptions(cmd: Command): Command {
  return hostOptions(cacheOptions(statsOption(registryOptions(cmd))));
}

/** What hostOptions sets (commander: --no-guess sets `guess` false). */
export interface HostFlags {
  guess?: boolean;
  readAhead?: number;
}

/**
 * --no-guess and --read-ahead: how a FUSE host (mount, store, snapshotter) reads ahead of a
 * start. Values land in `guess` and `readAhead`.
 */
export function hostOptions(cmd: Command): Command {
  return cmd
    .option(
      "--no-guess",
      "do not fetch what a start reads next (the libraries the dynamic loader opens, the modules Python and Node.js programs import)",
    )
    .option(
      "--read-ahead <bytes>",
      "bytes fetched ahead of a file read sequentially (default 8388608; 0: none)",
      intArg("--read-ahead", 0),
    );
}

/** The options every reading command takes (BLOB sources, registries, caches, statistics). */
export function readingOptions(cmd: Command): Command {
  cmd
    .option(
      "--toc-digest <digest>",
      "expected TOC digest (sha256:...); images use the layer annotation",
    )
    .option(
      "--layer <n|digest>",
      "with docker://: one layer (0 is the bottom) instead of the merged image",
    )
    .option("--platform <os/arch>", "with docker://: the platform to pick from an index");
  return cacheOptions(statsOption(registryOptions(cmd)))
    .option(
      "--index <auto|none>",
      "with docker://: read plain gzip layers through the index `seekable index` stored beside the image (auto), or whole (none)",
    )
    .option("--index-digest <digest>", "with docker://: the gzip index artifact to use (pinned)");
}

/** An argParser for an integer option in [min, max]. */
export function intArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    }
    return n;
  };
}

/** An argParser for a duration in seconds (a positive finite number): milliseconds. */
export function secondsArg(name: string) {
  return (v: string): number => {
    const s = Number(v);
    if (v.trim() === "" || !(s > 0) || !Number.isFinite(s))
      throw new InvalidArgumentError(`${name} must be a positive number of seconds`);
    return s * 1000;
  };
}

/** An argParser for repeatable options that also take comma lists ("--rtt 20,50 --rtt 100"). */
export function numberList(name: string) {
  return (v: string, prev: number[] = []): number[] => {
    const out = [...prev];
    for (const part of v.split(",")) {
      const n = Number(part.trim());
      if (part.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1e6)
        throw new InvalidArgumentError(`${name} takes non-negative numbers (comma lists allowed)`);
      out.push(n);
    }
    return out;
  };
}
