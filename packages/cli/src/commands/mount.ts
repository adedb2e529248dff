import { errorLine } from "@seekable/format";
// Loaded when used: @seekable/image only for --prefetch, @seekable/mount (fuse-native) while
// the image opens. The start of a mount loads no more than it needs.

import type { ProfilePrefetchResult } from "@seekable/mount";
import { getImageManifest, parsePlatform, parseReference, referrersTag } from "@seekable/registry";
import { CliError } from "../errors.js";
import { serveUntilInterrupted } from "../foreground.js";
import type { HostFlags } from "../options.js";
import { type Profile, readProfileFile } from "../profile-file.js";
import { openSession, type ReadingFlags, type Session } from "../target.js";
import { printTiming } from "../timing.js";

export interface MountFlags extends ReadingFlags, HostFlags {
  record?: string;
  backgroundFetch?: boolean;
  /** A profile file (one path a line, as --record writes), or "auto". */
  prefetch?: string;
}

/**
 * `--prefetch auto`: the newest profile stored for the image manifest that was mounted
 * (the platform's, for an index), by the referrers API or the tag fallback. Undefined
 * (with a reason) when there is none.
 */
async function registryProfile(
  ref: string,
  session: Session,
  flags: MountFlags,
): Promise<Profile | string> {
  if (!ref.startsWith("docker://")) return "--prefetch auto needs a docker:// image";
  const reference = parseReference(ref.slice("docker://".length));
  const client = session.client();
  const { manifest } = await getImageManifest(client, reference, {
    platform: flags.platform ? parsePlatform(flags.platform) : undefined,
  });
  // The tag could have moved since the mount opened it: the profile must be for what is mounted.
  const layers = new Set((manifest.json.layers ?? []).map((l) => l.digest));
  if (session.target.layers.some((l) => l.digest === undefined || !layers.has(l.digest)))
    return `${ref} changed while it was being mounted`;
  const repo = { registry: reference.registry, repository: reference.repository };
  const { findProfile } = await import("@seekable/image");
  const found = await findProfile(client, repo, manifest.digest);
  if (!found)
    return `no profile stored for ${manifest.digest} (looked for referrers, and the ${referrersTag(manifest.digest)} tag)`;
  return {
    paths: found.paths,
    name: `${found.digest} (found by the ${found.via === "api" ? "referrers API" : "tag fallback"})`,
  };
}

const describe = errorLine;

function megabytes(n: number): string {
  return n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * Reports what --prefetch did, as one line on stderr: the files fetched, or why the profile
 * was not used (the mount then reads on demand, as without --prefetch).
 */
function reportPrefetch(
  profile: Promise<Profile | string>,
  done: Promise<ProfilePrefetchResult | undefined>,
  log: (line: string) => void,
): void {
  let name = "";
  void profile.then(
    (p) => {
      if (typeof p === "string") log(`warning: ${p}; reading on demand`);
      else name = p.name;
    },
    () => {},
  );
  void done.then(
    (r) => {
      if (!r) return;
      const cached = r.cached > 0 ? `, ${r.cached} chunks already cached` : "";
      log(
        `prefetched ${r.files} files of profile ${name}: ${r.chunks} chunks, ${megabytes(r.bytes)} in ${r.reads} batched reads${cached}, ${(r.ms / 1000).toFixed(2)} s`,
      );
    },
    (e) => {
      if ((e as Error)?.name === "AbortError") return; // unmounted meanwhile
      log(`warning: ${name ? `profile ${name}: ` : ""}${describe(e)}; reading on demand`);
    },
  );
}

/**
 * `seekable mount REF DIR`: runs in the foreground until SIGINT/SIGTERM/SIGHUP, then
 * unmounts, writes --record and --stats, and exits 0.
 */
export async function mountCommand(ref: string, dir: string, flags: MountFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`seekable: mount: ${line}\n`);
  if (flags.backgroundFetch && flags.cache === false) {
    log("--background-fetch is ignored with --no-cache (nowhere to keep the image)");
    flags.backgroundFetch = false;
  }
  // The FUSE adapter loads while the image's manifest and TOCs are fetched.
  const fuseModule = import("@seekable/mount");
  fuseModule.catch(() => {}); // awaited below
  const session = await openSession(ref, flags);
  // The profile is found while the kernel mounts; the mount does not wait for it.
  const profile: Promise<Profile | string> | undefined =
    flags.prefetch === undefined
      ? undefined
      : flags.prefetch === "auto"
        ? registryProfile(ref, session, flags)
        : readProfileFile(flags.prefetch);
  const paths = profile?.then((p) => (typeof p === "string" ? undefined : p.paths));
  paths?.catch(() => {}); // reported by reportPrefetch, once the mount is up
  let mounted: Awaited<ReturnType<typeof import("@seekable/mount").mountTarget>>;
  try {
    const { mountTarget } = await fuseModule;
    performance.mark("cli: FUSE adapter loaded");
    mounted = await mountTarget(session.target, dir, {
      record: flags.record,
      backgroundFetch: flags.backgroundFetch,
      guess: flags.guess,
      readAhead: flags.readAhead,
      prefetch: paths,
      log,
    });
  } catch (e) {
    await session.finish();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new CliError(`${dir}: no such directory`, true);
    throw new CliError(`cannot mount at ${dir}: ${err.message ?? String(e)}`, true);
  }
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ mounted: ref, dir: mounted.dir, kind: session.target.kind, layers: session.target.layers.length })}\n`,
    );
  } else process.stdout.write(`mounted ${ref} at ${mounted.dir}\n`);
  printTiming("cli: mounted (reported on stdout)");
  if (profile) reportPrefetch(profile, mounted.profiled, log);

  await serveUntilInterrupted(
    () => mounted.unmount(),
    () => session.finish(),
    log,
  );
}
