import {
  DiskChunkCache,
  defaultCacheDir,
  LayerNotFoundError,
  MemoryChunkCache,
  type OpenedTarget,
  openTarget,
  ReadStats,
  TieredChunkCache,
} from "@seekable/reader";
import {
  type Credentials,
  parseCredentials,
  RegistryClient,
  RegistryError,
} from "@seekable/registry";
import { CliError } from "./errors.js";

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
}

export interface Session {
  target: OpenedTarget;
  /** The session's registry client (its requests count in --stats). */
  client(): RegistryClient;
  /** Prints the --stats line (if asked) and releases everything. */
  finish(): Promise<void>;
}

/** Opens BLOB with caches, credentials and statistics as the flags say. */
export async function openSession(blob: string, flags: ReadingFlags): Promise<Session> {
  if (flags.tocDigest && !/^sha256:[0-9a-f]{64}$/.test(flags.tocDigest)) {
    throw new CliError(`--toc-digest ${flags.tocDigest}: not a sha256 digest`, true);
  }
  const stats = new ReadStats();
  const remote = /^(https?|docker):\/\//.test(blob);
  // Local blobs are read in place: a disk cache would only copy them, unless asked for.
  const diskDir =
    flags.cache === false
      ? undefined
      : (flags.cacheDir ?? (remote ? defaultCacheDir() : undefined));
  const cache = new TieredChunkCache(
    new MemoryChunkCache(),
    diskDir ? new DiskChunkCache(diskDir) : undefined,
    stats,
  );
  let client: RegistryClient | undefined;
  const getClient = (): RegistryClient => {
    client ??= new RegistryClient({
      credentials: flags.creds ? credsFlag(flags.creds) : undefined,
      plainHttp: flags.plainHttp ? true : undefined,
    });
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
  try {
    target = await openTarget(blob, {
      client: getClient,
      stats,
      cache,
      tocDigest: flags.tocDigest,
      platform: flags.platform,
      layer: flags.layer,
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
      await target.close();
      await client?.close();
    },
  };
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
