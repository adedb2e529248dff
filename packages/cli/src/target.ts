import {
  defaultCacheDir,
  type LayerLocation,
  LayerNotFoundError,
  type OpenedTarget,
  openLocation,
  ReadStats,
  sessionCache,
  type TieredChunkCache,
} from "@seekable/reader";
import {
  type Credentials,
  type Descriptor,
  parseBlobUrl,
  parseCredentials,
  parseReference,
  RegistryClient,
  RegistryError,
} from "@seekable/registry";
import { CliError } from "./errors.js";
import { gzipIndexLookup } from "./gzip-indexes.js";

/** Options every reading command takes (the CLI contract). */
export interface ReadingFlags {
  tocDigest?: string;
  layer?: string;
  platform?: string;
  creds?: string;
  plainHttp?: boolean;
  stats?: boolean;
  cacheDir?: string;
  /** commander's --no-cache sets this to false. */
  cache?: boolean;
  json?: boolean;
  /** auto (default) or none: gzip layer indexes stored beside an image. */
  index?: string;
  indexDigest?: string;
}

export interface Session {
  target: OpenedTarget;
  /** The session's registry client (its requests count in --stats). */
  client(): RegistryClient;
  /** Prints the --stats line (if asked) and releases everything. */
  finish(): Promise<void>;
}

/**
 * BLOB as the CLI contract says: a local file, `http(s)://HOST/v2/NAME/blobs/DIGEST`, or
 * `docker://REF` (the whole image, or one layer with --layer).
 */
export function parseBlob(
  blob: string,
  flags: Pick<ReadingFlags, "layer" | "platform"> = {},
): LayerLocation {
  if (/^https?:\/\//.test(blob)) {
    const { reference, plainHttp } = parseBlobUrl(blob);
    // The URL's scheme is the transport: https is TLS even on loopback, http is not upgraded
    // (the client then sends credentials only where plain HTTP was allowed explicitly).
    return {
      kind: "blob",
      registry: reference.registry,
      repository: reference.repository,
      digest: reference.digest as string,
      scheme: plainHttp ? "http" : "https",
    };
  }
  if (blob.startsWith("docker://")) {
    return {
      kind: "image",
      reference: parseReference(blob.slice("docker://".length)),
      platform: flags.platform,
      layer: flags.layer,
    };
  }
  return { kind: "file", path: blob };
}

/** Opens BLOB with caches, credentials and statistics as the flags say. */
export async function openSession(blob: string, flags: ReadingFlags): Promise<Session> {
  if (flags.tocDigest && !/^sha256:[0-9a-f]{64}$/.test(flags.tocDigest)) {
    throw new CliError(`--toc-digest ${flags.tocDigest}: not a sha256 digest`, true);
  }
  const stats = new ReadStats();
  const cache = chunkCache(flags, stats, /^(https?|docker):\/\//.test(blob));
  let client: RegistryClient | undefined;
  const getClient = (): RegistryClient => {
    client ??= registryClient(flags);
    return client;
  };
  const report = (): void => {
    if (!flags.stats) return;
    const s = stats.toJSON();
    if (client) {
      s.requests += client.stats.requests;
      s.bytesFetched += client.stats.bytesFetched;
    }
    process.stderr.write(`${JSON.stringify(s)}\n`);
  };
  let target: OpenedTarget;
  const location = parseBlob(blob, flags);
  const lookup = gzipIndexLookup(getClient, flags);
  const gzipIndexes =
    lookup && location.kind === "image"
      ? (digest: string, layers: Descriptor[], signal?: AbortSignal) =>
          lookup(location.reference, digest, layers, signal)
      : undefined;
  try {
    target = await openLocation(location, {
      client: getClient,
      stats,
      cache,
      tocDigest: flags.tocDigest,
      gzipIndexes,
    });
  } catch (e) {
    report();
    await client?.close();
    if (e instanceof LayerNotFoundError) {
      throw new CliError(
        `--layer ${e.layer}: the image has ${e.layerCount} layers (0 is the bottom)`,
      );
    }
    throw e;
  }
  return {
    target,
    client: getClient,
    finish: async () => {
      report();
      // The chunks fetched are kept for the next run: wait for the writes behind (bounded:
      // 64 MiB at most are pending, written locally); a --no-cache run's own are removed.
      await cache.close();
      await target.close();
      await client?.close();
    },
  };
}

/** The registry client that --creds and --plain-http ask for (options.ts registryOptions). */
export function registryClient(flags: Pick<ReadingFlags, "creds" | "plainHttp">): RegistryClient {
  return new RegistryClient({
    credentials: flags.creds ? credsFlag(flags.creds) : undefined,
    plainHttp: flags.plainHttp ? true : undefined,
  });
}

/**
 * The chunk cache that --cache-dir and --no-cache ask for (options.ts cacheOptions): memory,
 * then the disk. --no-cache keeps nothing for the next run, but a remote read still fetches
 * each chunk once: its chunks go to a directory of the run's own, removed at close. A local
 * blob (`remote` false) is read in place: a disk cache would only copy it, unless --cache-dir
 * asks for one.
 */
export function chunkCache(
  flags: Pick<ReadingFlags, "cacheDir" | "cache">,
  stats: ReadStats,
  remote = true,
): TieredChunkCache {
  if (flags.cache === false) return sessionCache(remote ? "private" : undefined, stats);
  return sessionCache(flags.cacheDir ?? (remote ? defaultCacheDir() : undefined), stats);
}

/** --creds USER:PASSWORD; the library's error does not know the flag's name. */
export function credsFlag(text: string): Credentials {
  try {
    return parseCredentials(text);
  } catch (e) {
    if (e instanceof RegistryError && e.code === "BAD_CREDENTIALS")
      throw new CliError(`--creds: ${e.reason}`, true);
    throw e;
  }
}
