import { cleanEntryName, FormatError } from "@seekable/format";
import {
  type Descriptor,
  digestOf,
  fetchBlob,
  type Platform,
  type Reference,
  type ReferrersVia,
  type RegistryClient,
  type Repository,
} from "@seekable/registry";
import {
  artifactManifest,
  artifactSubject,
  CREATED_ANNOTATION,
  findArtifact,
  pushArtifact,
} from "./artifact.js";

export { CREATED_ANNOTATION, newestReferrer } from "./artifact.js";

/**
 * A start-up profile: the files a program opened, in first-access order (what
 * `mount --record` writes), stored beside the image as an OCI artifact whose `subject` is
 * the image manifest. The artifact is an image manifest with this `artifactType`, the empty
 * config, and one layer: the profile as JSON `{"mediaType":…,"paths":[…]}`.
 */
export const PROFILE_ARTIFACT_TYPE = "application/vnd.seekable.profile.v1+json";
/** Media type of the profile layer (the same as the artifact type, as OCI suggests). */
export const PROFILE_MEDIA_TYPE = PROFILE_ARTIFACT_TYPE;
/** A larger profile is refused (read from a file or a registry). */
export const MAX_PROFILE_BYTES = 16 << 20;

/** A profile that cannot be used: unreadable, malformed, too big, or not for this image. */
export class ProfileError extends FormatError {}

function checkPath(p: unknown, where: string): string {
  if (typeof p !== "string" || p.length === 0 || p.length > 4096 || p.includes("\0"))
    throw new ProfileError(`${where}: not a path`);
  const clean = cleanEntryName(p);
  if (clean === "") throw new ProfileError(`${where}: not a file path (${JSON.stringify(p)})`);
  return clean;
}

/** Paths kept once each, in first-occurrence order. */
function unique(paths: string[]): string[] {
  return [...new Set(paths)];
}

/**
 * A profile file as the user gives it: one path a line (`mount --record`), or the JSON
 * document this module stores. Blank lines are ignored; a leading "/" or "./" is dropped.
 */
export function parseProfile(bytes: Uint8Array): string[] {
  if (bytes.length > MAX_PROFILE_BYTES)
    throw new ProfileError(`profile of ${bytes.length} bytes exceeds ${MAX_PROFILE_BYTES}`);
  const text = Buffer.from(bytes).toString("utf8");
  if (/^\s*\{/.test(text)) return decodeProfile(bytes);
  const out: string[] = [];
  text.split("\n").forEach((line, i) => {
    const p = line.replace(/\r$/, "");
    if (p.trim() === "") return;
    out.push(checkPath(p, `line ${i + 1}`));
  });
  return unique(out);
}

/** The stored form: deterministic JSON. */
export function encodeProfile(paths: string[]): Uint8Array {
  return Buffer.from(JSON.stringify({ mediaType: PROFILE_MEDIA_TYPE, paths: unique(paths) }));
}

/** Parses and validates the stored form. */
export function decodeProfile(bytes: Uint8Array): string[] {
  if (bytes.length > MAX_PROFILE_BYTES)
    throw new ProfileError(`profile of ${bytes.length} bytes exceeds ${MAX_PROFILE_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new ProfileError("profile is not valid JSON");
  }
  const doc = json as { mediaType?: unknown; paths?: unknown };
  if (doc === null || typeof doc !== "object" || !Array.isArray(doc.paths))
    throw new ProfileError('profile is not a {"paths":[...]} object');
  if (doc.mediaType !== undefined && doc.mediaType !== PROFILE_MEDIA_TYPE)
    throw new ProfileError(`profile has media type ${JSON.stringify(doc.mediaType)}`);
  return unique(doc.paths.map((p, i) => checkPath(p, `path ${i}`)));
}

const PROFILE_LAYER_TITLE = { "org.opencontainers.image.title": "profile.json" };

/** The artifact manifest of a profile blob for a subject. */
export function profileManifest(
  subject: Descriptor,
  layer: Descriptor,
  created: string,
): Uint8Array {
  return artifactManifest(
    PROFILE_ARTIFACT_TYPE,
    subject,
    [
      {
        mediaType: PROFILE_MEDIA_TYPE,
        digest: layer.digest,
        size: layer.size,
        annotations: PROFILE_LAYER_TITLE,
      },
    ],
    created,
  );
}

export interface PushedProfile {
  /** The artifact manifest's digest. */
  digest: string;
  /** The image manifest it refers to (the platform's, for an index). */
  subject: Descriptor;
  via: ReferrersVia;
  paths: number;
}

/**
 * Stores a profile beside the image REF (for an index: the platform's manifest): blobs,
 * the artifact manifest by digest, then the referrers index (API, or the tag fallback).
 */
export async function pushProfile(
  client: RegistryClient,
  ref: Reference,
  paths: string[],
  options: { platform?: Platform; created?: Date; signal?: AbortSignal } = {},
): Promise<PushedProfile> {
  const { signal } = options;
  const { manifest, subject, repo } = await artifactSubject(client, ref, {
    platform: options.platform,
    signal,
  });
  const body = encodeProfile(paths);
  const created = (options.created ?? new Date()).toISOString();
  const descriptor: Descriptor = {
    mediaType: PROFILE_MEDIA_TYPE,
    digest: digestOf(body),
    size: body.length,
    annotations: PROFILE_LAYER_TITLE,
  };
  const { digest, via } = await pushArtifact(
    client,
    repo,
    PROFILE_ARTIFACT_TYPE,
    subject,
    [{ descriptor, bytes: body }],
    created,
    signal,
  );
  return { digest, subject, via, paths: unique(paths).length };
}

export interface FoundProfile {
  paths: string[];
  /** The artifact manifest's digest. */
  digest: string;
  via: ReferrersVia;
  created?: string;
}

/**
 * The newest profile stored for the image manifest `subjectDigest`, or undefined when
 * there is none. Everything is checked: the artifact manifest against its digest, its type
 * and subject, the profile blob's size (before fetching) and digest, and its contents.
 */
export async function findProfile(
  client: RegistryClient,
  repo: Repository,
  subjectDigest: string,
  options: { signal?: AbortSignal } = {},
): Promise<FoundProfile | undefined> {
  const { signal } = options;
  const found = await findArtifact(client, repo, subjectDigest, PROFILE_ARTIFACT_TYPE, "profile", {
    signal,
    fail: (m) => new ProfileError(m),
  });
  if (!found) return undefined;
  const { manifest: m, via } = found;
  const name = `profile ${m.digest}`;
  const layer = (m.json.layers ?? []).find((l) => l?.mediaType === PROFILE_MEDIA_TYPE);
  if (!layer || typeof layer.digest !== "string" || !Number.isSafeInteger(layer.size))
    throw new ProfileError(`${name}: no ${PROFILE_MEDIA_TYPE} layer`);
  if (layer.size > MAX_PROFILE_BYTES)
    throw new ProfileError(`${name}: ${layer.size} bytes exceeds ${MAX_PROFILE_BYTES}`);
  const bytes = await fetchBlob(client, repo, layer.digest, {
    size: layer.size,
    maxBytes: MAX_PROFILE_BYTES,
    signal,
  });
  let paths: string[];
  try {
    paths = decodeProfile(bytes);
  } catch (e) {
    throw new ProfileError(`${name}: ${(e as Error).message}`);
  }
  return {
    paths,
    digest: m.digest,
    via: via as ReferrersVia, // listed (not pinned): found through the API or the tag
    created: m.json.annotations?.[CREATED_ANNOTATION],
  };
}
