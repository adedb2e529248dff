import { errorLine } from "@seekable/format";
import { mountStore } from "@seekable/mount";
import { ReadStats, type TieredChunkCache } from "@seekable/reader";
import {
  type Descriptor,
  formatReference,
  type Reference,
  type RegistryClient,
  referrersTag,
} from "@seekable/registry";
import { CliError } from "../errors.js";
import { serveUntilInterrupted } from "../foreground.js";
import { gzipIndexLookup } from "../gzip-indexes.js";
import type { HostFlags } from "../options.js";
import { type Profile, readProfileFile } from "../profile-file.js";
import { chunkCache, type ReadingFlags, registryClient } from "../target.js";

export interface StoreFlags
  extends Pick<ReadingFlags, "creds" | "plainHttp" | "stats" | "cacheDir" | "cache" | "json">,
    HostFlags {
  /** A profile file (one path a line, as `mount --record` writes), or "auto". */
  prefetch?: string;
  /** Milliseconds an unused layer stays resolved after its last request (the flag takes seconds). */
  releaseAfter?: number;
  /** auto (default): plain gzip layers with an index stored beside the image are lazy. */
  index?: string;
}

const describe = errorLine;

/**
 * The store's profile look-up for --prefetch: FILE, read once, for every image; auto, the
 * newest profile stored beside each image manifest (referrers API or tag fallback), looked
 * up once per image by the store. None found is one line, never a failure.
 */
function profileLookup(
  prefetch: string,
  client: RegistryClient,
  log: (line: string) => void,
): (image: { ref: Reference; manifestDigest: string }) => Promise<Profile | undefined> {
  if (prefetch !== "auto") {
    const file = readProfileFile(prefetch).catch((e) => {
      log(`warning: ${describe(e)}; reading on demand`);
      return undefined;
    });
    return () => file;
  }
  return async ({ ref, manifestDigest }) => {
    const { findProfile } = await import("@seekable/image");
    const repo = { registry: ref.registry, repository: ref.repository };
    const found = await findProfile(client, repo, manifestDigest);
    if (!found) {
      log(
        `no profile stored for ${formatReference(ref)} (${manifestDigest}; looked for referrers, and the ${referrersTag(manifestDigest)} tag); reading on demand`,
      );
      return undefined;
    }
    return {
      paths: found.paths,
      name: `${found.digest} (found by the ${found.via === "api" ? "referrers API" : "tag fallback"})`,
    };
  };
}

/** What the store (and the snapshotter's store) reads with: client, caches, profile, statistics. */
export interface StoreSetup {
  client: RegistryClient;
  cache: TieredChunkCache;
  stats: ReadStats;
  profile?: ReturnType<typeof profileLookup>;
  releaseAfterMs?: number;
  /** --no-guess, --read-ahead. */
  guess?: boolean;
  readAhead?: number;
  /** The --stats line, then the cache flushed and the client closed (at exit). */
  finish(): Promise<void>;
}

export function storeSetup(flags: StoreFlags, log: (line: string) => void): StoreSetup {
  const stats = new ReadStats();
  const cache = chunkCache(flags, stats);
  const client = registryClient(flags);
  const profile = flags.prefetch ? profileLookup(flags.prefetch, client, log) : undefined;
  return {
    client,
    cache,
    stats,
    profile,
    releaseAfterMs: flags.releaseAfter,
    guess: flags.guess,
    readAhead: flags.readAhead,
    async finish() {
      if (flags.stats) {
        const s = stats.toJSON();
        s.requests += client.stats.requests;
        s.bytesFetched += client.stats.bytesFetched;
        process.stderr.write(`${JSON.stringify(s)}\n`);
      }
      await cache.close(); // the chunks fetched stay for the next start (--no-cache: removed)
      await client.close();
    },
  };
}

/**
 * `seekable store DIR`: an Additional Layer Store for podman/CRI-O in the foreground until
 * SIGINT/SIGTERM/SIGHUP, then unmounts, prints --stats and exits 0.
 */
export async function storeCommand(dir: string, flags: StoreFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`seekable: store: ${line}\n`);
  const { client, cache, profile, releaseAfterMs, guess, readAhead, finish } = storeSetup(
    flags,
    log,
  );
  const lookup = gzipIndexLookup(() => client, { index: flags.index }, log);
  const gzipIndexes = lookup
    ? (digest: string, layers: Descriptor[], ref: Reference) => lookup(ref, digest, layers)
    : undefined;
  let mounted: Awaited<ReturnType<typeof mountStore>>;
  try {
    mounted = await mountStore(dir, {
      client,
      cache,
      log,
      profile,
      releaseAfterMs,
      gzipIndexes,
      guess,
      readAhead,
    });
  } catch (e) {
    await client.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new CliError(`${dir}: no such directory`, true);
    throw new CliError(`cannot mount at ${dir}: ${err.message ?? String(e)}`, true);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ store: mounted.dir })}\n`);
  else process.stdout.write(`serving a layer store at ${mounted.dir}\n`);

  await serveUntilInterrupted(() => mounted.unmount(), finish, log);
}
