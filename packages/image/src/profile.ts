import { cleanEntryName, FormatError } from "@seekable/format";
import {
  addReferrer,
  type Descriptor,
  digestOf,
  fetchBlob,
  getImageManifest,
  getManifest,
  listReferrers,
  MediaType,
  type Platform,
  pushBlob,
  putManifest,
  type Reference,
  type ReferrersVia,
  type RegistryClient,
  type Repository,
} from "@seekable/registry";

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
export const CREATED_ANNOTATION = "org.opencontainers.image.created";

/** The empty config of artifacts, `{}`. */
const EMPTY = Buffer.from("{}");
const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MediaType.OciEmpty,
  digest: digestOf(EMPTY),
  size: EMPTY.length,
};

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

/** The artifact manifest of a profile blob for a subject. */
export function profileManifest(
  subject: Descriptor,
  layer: Descriptor,
  created: string,
): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: PROFILE_ARTIFACT_TYPE,
      config: EMPTY_DESCRIPTOR,
      layers: [
        {
          mediaType: PROFILE_MEDIA_TYPE,
          digest: layer.digest,
          size: layer.size,
          annotations: { "org.opencontainers.image.title": "profile.json" },
        },
      ],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { [CREATED_ANNOTATION]: created },
    }),
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
  const { manifest } = await getImageManifest(client, ref, { platform: options.platform, signal });
  const subject: Descriptor = {
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.size,
  };
  const repo: Repository = { registry: ref.registry, repository: ref.repository };
  const body = encodeProfile(paths);
  const layer = { digest: digestOf(body), size: body.length };
  await pushBlob(client, repo, EMPTY_DESCRIPTOR, EMPTY, { signal });
  await pushBlob(client, repo, layer, body, { signal });
  const created = (options.created ?? new Date()).toISOString();
  const bytes = profileManifest(subject, { mediaType: PROFILE_MEDIA_TYPE, ...layer }, created);
  const digest = await putManifest(
    client,
    { ...repo, digest: digestOf(bytes) },
    bytes,
    MediaType.OciManifest,
    { signal },
  );
  const via = await addReferrer(
    client,
    repo,
    subject.digest,
    {
      mediaType: MediaType.OciManifest,
      digest,
      size: bytes.length,
      artifactType: PROFILE_ARTIFACT_TYPE,
      annotations: { [CREATED_ANNOTATION]: created },
    },
    { signal },
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

/** The newest descriptor: by the created annotation, later in the list on a tie or none. */
export function newestReferrer(list: Descriptor[]): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestAt = Number.NEGATIVE_INFINITY;
  for (const d of list) {
    const t = Date.parse(d.annotations?.[CREATED_ANNOTATION] ?? "");
    const at = Number.isFinite(t) ? t : Number.NEGATIVE_INFINITY;
    if (best === undefined || at >= bestAt) {
      best = d;
      bestAt = at;
    }
  }
  return best;
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
  const { descriptors, via } = await listReferrers(client, repo, subjectDigest, {
    artifactType: PROFILE_ARTIFACT_TYPE,
    signal,
  });
  const newest = newestReferrer(descriptors);
  if (!newest) return undefined;
  const name = `profile ${newest.digest}`;
  if (newest.size > 4 << 20) throw new ProfileError(`${name}: manifest of ${newest.size} bytes`);
  const m = await getManifest(client, { ...repo, digest: newest.digest }, { signal });
  if (m.json.artifactType !== PROFILE_ARTIFACT_TYPE)
    throw new ProfileError(`${name}: artifact type ${JSON.stringify(m.json.artifactType)}`);
  if (m.json.subject?.digest !== subjectDigest)
    throw new ProfileError(`${name}: its subject is not ${subjectDigest}`);
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
  return { paths, digest: m.digest, via, created: m.json.annotations?.[CREATED_ANNOTATION] };
}
