import { homedir } from "node:os";
import { join } from "node:path";
import { startSnapshotter } from "@seekable/snapshotter";
import { CliError } from "../errors.js";
import { serveUntilInterrupted } from "../foreground.js";
import { type StoreFlags, storeSetup } from "./store.js";

export interface SnapshotterFlags extends StoreFlags {
  address?: string;
  root?: string;
}

const DEFAULT_ROOT = "/var/lib/seekable-snapshotter";
const DEFAULT_ADDRESS = "/run/seekable-snapshotter/snapshotter.sock";

/**
 * `seekable snapshotter`: containerd's snapshot API on a unix socket, in the foreground until
 * SIGINT/SIGTERM/SIGHUP (then the socket closes and the layer store unmounts).
 */
export async function snapshotterCommand(flags: SnapshotterFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`seekable: snapshotter: ${line}\n`);
  const setup = storeSetup(flags, log);
  const root =
    flags.root ??
    (process.getuid?.() === 0
      ? DEFAULT_ROOT
      : join(homedir(), ".local/share/seekable-snapshotter"));
  const address = flags.address ?? DEFAULT_ADDRESS;
  let running: Awaited<ReturnType<typeof startSnapshotter>>;
  try {
    running = await startSnapshotter({
      address,
      root,
      client: setup.client,
      cache: setup.cache,
      log,
      profile: setup.profile,
      releaseAfterMs: setup.releaseAfterMs,
      guess: setup.guess,
      readAhead: setup.readAhead,
    });
  } catch (e) {
    await setup.client.close();
    throw new CliError(
      `cannot serve a snapshotter at ${address} (root ${root}): ${(e as Error).message}`,
      true,
    );
  }
  if (flags.json)
    process.stdout.write(`${JSON.stringify({ address: running.address, root: running.root })}\n`);
  else
    process.stdout.write(
      `serving containerd snapshots at ${running.address} (root ${running.root})\n`,
    );
  await serveUntilInterrupted(() => running.close(), setup.finish, log);
}
