import { readFile, stat } from "node:fs/promises";
import {
  MAX_PROFILE_BYTES,
  PROFILE_ARTIFACT_TYPE,
  parseProfile,
  pushProfile,
} from "@seekable/image";
import { parsePlatform, parseReference, referrersTag } from "@seekable/registry";
import { CliError } from "../errors.js";
import { registryClient } from "../target.js";

export interface ProfilePushFlags {
  platform?: string;
  creds?: string;
  plainHttp?: boolean;
  json?: boolean;
}

/** SOURCE_DATE_EPOCH (seconds), for a reproducible `created` annotation; else now. */
function createdTime(): Date | undefined {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === "") return undefined;
  if (!/^\d+$/.test(epoch)) throw new CliError(`SOURCE_DATE_EPOCH=${epoch}: not a number`, true);
  return new Date(Number(epoch) * 1000);
}

/**
 * `seekable profile push docker://REF FILE`: stores a recorded profile beside the image as
 * an OCI artifact whose subject is the image manifest (the platform's, for an index).
 */
export async function profilePushCommand(
  ref: string,
  file: string,
  flags: ProfilePushFlags,
): Promise<void> {
  if (!ref.startsWith("docker://"))
    throw new CliError(
      `${ref}: expected an image reference docker://HOST/NAME[:TAG|@DIGEST]`,
      true,
    );
  const reference = parseReference(ref.slice("docker://".length));
  const size = (await stat(file)).size;
  if (size > MAX_PROFILE_BYTES)
    throw new CliError(`${file}: ${size} bytes exceeds the ${MAX_PROFILE_BYTES}-byte limit`, true);
  let paths: string[];
  try {
    paths = parseProfile(await readFile(file));
  } catch (e) {
    throw new CliError(`${file}: ${(e as Error).message}`, true);
  }
  if (paths.length === 0) throw new CliError(`${file}: no paths in the profile`, true);
  const client = registryClient(flags);
  try {
    const pushed = await pushProfile(client, reference, paths, {
      platform: flags.platform ? parsePlatform(flags.platform) : undefined,
      created: createdTime(),
    });
    const tag = pushed.via === "tag" ? referrersTag(pushed.subject.digest) : undefined;
    if (flags.json) {
      process.stdout.write(
        `${JSON.stringify({
          digest: pushed.digest,
          artifactType: PROFILE_ARTIFACT_TYPE,
          subject: pushed.subject,
          paths: pushed.paths,
          via: pushed.via,
          ...(tag && { tag }),
        })}\n`,
      );
    } else {
      process.stdout.write(
        `pushed profile ${pushed.digest} (${pushed.paths} paths) for ${pushed.subject.digest}, ${tag ? `listed in the ${tag} tag (no referrers API)` : "listed by the referrers API"}\n`,
      );
    }
  } finally {
    await client.close();
  }
}
