import { errorLine } from "@seekable/format";
import { type Platform, parsePlatform, parseReference } from "@seekable/registry";
// Not the package root: that loads the server side (FUSE, SQLite) a pull does not need.
import { pullImage } from "@seekable/snapshotter/pull";
import { CliError } from "../errors.js";
import { registryClient } from "../target.js";

export interface PullFlags {
  containerd: string;
  namespace: string;
  snapshotter: string;
  platform?: string;
  creds?: string;
  plainHttp?: boolean;
  json?: boolean;
}

/** gRPC's message for a socket nobody answers on, in words. */
function describe(e: unknown): string {
  return errorLine(e).replace(/^\d+ [A-Z_]+: /, "");
}

/** `seekable pull --containerd SOCK docker://IMAGE`: a lazy pull into containerd. */
export async function pullCommand(image: string, flags: PullFlags): Promise<void> {
  if (!image.startsWith("docker://")) {
    throw new CliError(`${image}: expected docker://HOST/NAME[:TAG|@DIGEST]`, true);
  }
  const ref = parseReference(image.slice("docker://".length));
  let platform: Platform | undefined;
  if (flags.platform) platform = parsePlatform(flags.platform);
  const client = registryClient(flags);
  const log = (line: string) => process.stderr.write(`seekable: pull: ${line}\n`);
  try {
    const r = await pullImage(ref, {
      socket: flags.containerd,
      namespace: flags.namespace,
      snapshotter: flags.snapshotter,
      client,
      platform,
      log,
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      const lazy = r.layers.filter((l) => l.kind === "lazy").length;
      const unpacked = r.layers.filter((l) => l.kind === "unpacked").length;
      process.stdout.write(
        `${r.name} ${r.manifest}: ${r.layers.length} layers (${lazy} lazy, ${unpacked} unpacked, ${r.layers.length - lazy - unpacked} already present)\n`,
      );
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`pull ${image} into ${flags.containerd}: ${describe(e)}`, true);
  } finally {
    await client.close();
  }
}
