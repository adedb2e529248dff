import { mountStore } from "@seekable/mount";
import {
  DiskChunkCache,
  defaultCacheDir,
  MemoryChunkCache,
  ReadStats,
  TieredChunkCache,
} from "@seekable/reader";
import { parseCredentials, RegistryClient } from "@seekable/registry";
import { CliError } from "../errors.js";
import { serveUntilInterrupted } from "../foreground.js";
import type { ReadingFlags } from "../target.js";

export type StoreFlags = Pick<
  ReadingFlags,
  "creds" | "plainHttp" | "stats" | "cacheDir" | "cache" | "json"
>;

/**
 * `seekable store DIR`: an Additional Layer Store for podman/CRI-O in the foreground until
 * SIGINT/SIGTERM/SIGHUP, then unmounts, prints --stats and exits 0.
 */
export async function storeCommand(dir: string, flags: StoreFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`seekable: store: ${line}\n`);
  const stats = new ReadStats();
  const diskDir = flags.cache === false ? undefined : (flags.cacheDir ?? defaultCacheDir());
  const cache = new TieredChunkCache(
    new MemoryChunkCache(),
    diskDir ? new DiskChunkCache(diskDir) : undefined,
    stats,
  );
  const client = new RegistryClient({
    credentials: flags.creds ? parseCredentials(flags.creds) : undefined,
    plainHttp: flags.plainHttp ? true : undefined,
  });
  let mounted: Awaited<ReturnType<typeof mountStore>>;
  try {
    mounted = await mountStore(dir, { client, cache, log });
  } catch (e) {
    await client.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new CliError(`${dir}: no such directory`, true);
    throw new CliError(`cannot mount at ${dir}: ${err.message ?? String(e)}`, true);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ store: mounted.dir })}\n`);
  else process.stdout.write(`serving a layer store at ${mounted.dir}\n`);

  await serveUntilInterrupted(
    () => mounted.unmount(),
    async () => {
      if (flags.stats) {
        const s = stats.toJSON();
        s.requests += client.stats.requests;
        s.bytesFetched += client.stats.bytesFetched;
        process.stderr.write(`${JSON.stringify(s)}\n`);
      }
      await client.close();
    },
    log,
  );
}
