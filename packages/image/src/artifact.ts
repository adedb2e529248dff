/**
 * OCI artifacts stored beside an image (start-up profiles, gzip layer indexes): an image
 * manifest with an `artifactType`, the empty config `{}`, its layers, the image manifest as
 * its `subject` and a created annotation; listed by the referrers API where the registry has
 * one, else by the OCI 1.1 tag fallback.
 */
import { FormatError } from "@seekable/format";
import {
  addReferrer,
  type Descriptor,
  digestOf,
  getImageManifest,
  getManifest,
  listReferrers,
  type ManifestResult,
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
 * The image manifest an artifact will be about (its `subject`: the platform's manifest of an
 * index), with the repository the artifact is pushed to.
 */
export async function artifactSubject(
  client: RegistryClient,
  ref: Reference,
  options: { platform?: Platform; signal?: AbortSignal },
): Promise<{ manifest: ManifestResult; subject: Descriptor; repo: Repository }> {
  const { manifest } = await getImageManifest(client, ref, options);
  return {
    manifest,
    subject: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size },
    repo: { registry: ref.registry, repository: ref.repository },
  };
}

export const CREATED_ANNOTATION = "org.opencontainers.image.created";
/** An artifact manifest larger than this is not fetched. */
const MAX_ARTIFACT_MANIFEST = 4 << 20;

/** The empty config of artifacts, `{}`. */
const EMPTY = Buffer.from("{}");
const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MediaType.OciEmpty,
  digest: digestOf(EMPTY),
  size: EMPTY.length,
};

/** The artifact manifest's bytes (deterministic for the same arguments). */
export function artifactManifest(
  artifactType: string,
  subject: Descriptor,
  layers: Descriptor[],
  created: string,
): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType,
      config: EMPTY_DESCRIPTOR,
      layers,
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { [CREATED_ANNOTATION]: created },
    }),
  );
}

/**
 * Pushes the blobs, the artifact manifest by digest, then lists it among the subject's
 * referrers (API, or the tag fallback). Returns the manifest digest and how it is listed.
 */
export async function pushArtifact(
  client: RegistryClient,
  repo: Repository,
  artifactType: string,
  subject: Descriptor,
  blobs: { descriptor: Descriptor; bytes: Uint8Array }[],
  created: string,
  signal?: AbortSignal,
): Promise<{ digest: string; via: ReferrersVia }> {
  await pushBlob(client, repo, EMPTY_DESCRIPTOR, EMPTY, { signal });
  for (const b of blobs) await pushBlob(client, repo, b.descriptor, b.bytes, { signal });
  const bytes = artifactManifest(
    artifactType,
    subject,
    blobs.map((b) => b.descriptor),
    created,
  );
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
      artifactType,
      annotations: { [CREATED_ANNOTATION]: created },
    },
    { signal },
  );
  return { digest, via };
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
 * The artifact manifest of `artifactType` for the image manifest `subjectDigest`: the one
 * `pinned` names, else the newest listed; undefined when none is listed. It is checked
 * against its digest, its type and its subject; a failed check is an error made by `fail`,
 * named `what DIGEST` (e.g. "profile sha256:…").
 */
export async function findArtifact(
  client: RegistryClient,
  repo: Repository,
  subjectDigest: string,
  artifactType: string,
  what: string,
  options: {
    pinned?: string;
    signal?: AbortSignal;
    fail?: (message: string) => Error;
  } = {},
): Promise<{ manifest: ManifestResult; via?: ReferrersVia } | undefined> {
  const { signal } = options;
  const fail = options.fail ?? ((m: string) => new FormatError(m));
  let digest = options.pinned;
  let via: ReferrersVia | undefined;
  if (!digest) {
    const listed = await listReferrers(client, repo, subjectDigest, { artifactType, signal });
    via = listed.via;
    const newest = newestReferrer(listed.descriptors);
    if (!newest) return undefined;
    if (newest.size > MAX_ARTIFACT_MANIFEST)
      throw fail(`${what} ${newest.digest}: manifest of ${newest.size} bytes`);
    digest = newest.digest;
  }
  const name = `${what} ${digest}`;
  const manifest = await getManifest(client, { ...repo, digest }, { signal });
  if (manifest.json.artifactType !== artifactType)
    throw fail(`${name}: artifact type ${JSON.stringify(manifest.json.artifactType)}`);
  if (manifest.json.subject?.digest !== subjectDigest)
    throw fail(`${name}: its subject is not ${subjectDigest}`);
  return { manifest, via };
}
