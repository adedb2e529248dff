import { repositoryScope } from "./auth.js";
import type { Repository } from "./blob.js";
import { readBody } from "./body.js";
import type { RegistryClient } from "./client.js";
import { isRegistryError, RegistryError } from "./errors.js";
import { getManifest, type ManifestJson, type ManifestResult, putManifest } from "./manifest.js";
import { MediaType } from "./media-types.js";
import type { Descriptor } from "./platform.js";
import { formatRepository } from "./reference.js";

/** How the referrers of a subject were found: the referrers API, or the tag fallback. */
export type ReferrersVia = "api" | "tag";

export interface Referrers {
  /** Descriptors of the manifests whose `subject` is the digest (filtered by artifactType). */
  descriptors: Descriptor[];
  via: ReferrersVia;
}

export interface ReferrersOptions {
  /** Only referrers of this artifact type (the registry may filter; we filter again). */
  artifactType?: string;
  signal?: AbortSignal;
}

const MAX_INDEX = 4 << 20;
const MAX_PAGES = 16;

/**
 * The tag the OCI distribution spec 1.1 names for a subject's referrers index where the
 * registry has no referrers API: `<alg>-<encoded>`, the algorithm truncated to 32 and the
 * encoded part to 64 characters (`sha256-<hex>`).
 */
export function referrersTag(digest: string): string {
  const colon = digest.indexOf(":");
  if (colon <= 0) throw new RegistryError(digest, "not a digest", { kind: "usage" });
  const alg = digest
    .slice(0, colon)
    .replace(/[^a-zA-Z0-9_.-]/g, "-")
    .slice(0, 32);
  return `${alg}-${digest.slice(colon + 1).slice(0, 64)}`;
}

function descriptorsOf(json: ManifestJson, subject: string): Descriptor[] {
  const list = json.manifests;
  if (!Array.isArray(list))
    throw new RegistryError(subject, "referrers response is not an image index", {
      kind: "protocol",
    });
  return list.filter(
    (d): d is Descriptor =>
      d !== null &&
      typeof d === "object" &&
      typeof d.digest === "string" &&
      typeof d.mediaType === "string" &&
      typeof d.size === "number",
  );
}

function byType(list: Descriptor[], artifactType: string | undefined): Descriptor[] {
  return artifactType === undefined ? list : list.filter((d) => d.artifactType === artifactType);
}

/** rel="next" of a Link header, as a URL or a path. */
function nextLink(link: string | string[] | undefined): string | undefined {
  for (const part of (Array.isArray(link) ? link.join(",") : (link ?? "")).split(",")) {
    const m = /<([^>]+)>\s*;.*\brel="?next"?/.exec(part);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * `GET /v2/NAME/referrers/DIGEST[?artifactType=…]`: the referrers, or undefined when the
 * registry has no referrers API (404: the spec's signal to use the tag fallback).
 */
export async function getReferrersApi(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: ReferrersOptions = {},
): Promise<Descriptor[] | undefined> {
  const subject = `${formatRepository(repo)} referrers of ${digest}`;
  const query = options.artifactType
    ? `?artifactType=${encodeURIComponent(options.artifactType)}`
    : "";
  let path: string | undefined = `/v2/${repo.repository}/referrers/${digest}${query}`;
  const out: Descriptor[] = [];
  for (let page = 0; path !== undefined && page < MAX_PAGES; page++) {
    const result: { list: Descriptor[]; next?: string } | undefined = await client.call(
      {
        method: "GET",
        registry: repo.registry,
        path,
        scopes: [repositoryScope(repo.repository, "pull")],
        subject,
        headers: { accept: MediaType.OciIndex },
        signal: options.signal,
        expect: [200, 404],
      },
      async (res) => {
        const bytes = await readBody(res.body, MAX_INDEX, [client.stats], subject);
        if (res.status === 404) return undefined;
        let json: ManifestJson;
        try {
          json = JSON.parse(bytes.toString("utf8")) as ManifestJson;
        } catch {
          throw new RegistryError(subject, "referrers response is not valid JSON", {
            kind: "protocol",
          });
        }
        if (json === null || typeof json !== "object")
          throw new RegistryError(subject, "referrers response is not a JSON object", {
            kind: "protocol",
          });
        return { list: descriptorsOf(json, subject), next: nextLink(res.headers.link) };
      },
    );
    if (result === undefined) return page === 0 ? undefined : out;
    out.push(...result.list);
    path = result.next;
  }
  return byType(out, options.artifactType);
}

/**
 * The referrers index stored under the fallback tag, or undefined when there is none. A tag
 * that holds something other than an index is an error (it is not ours to replace).
 */
export async function getReferrersTagIndex(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  signal?: AbortSignal,
): Promise<ManifestResult | undefined> {
  const ref = { ...repo, tag: referrersTag(digest) };
  let index: ManifestResult;
  try {
    index = await getManifest(client, ref, { accept: [MediaType.OciIndex], signal });
  } catch (e) {
    if (isRegistryError(e, "not-found")) return undefined;
    throw e;
  }
  descriptorsOf(index.json, `${formatRepository(repo)}:${ref.tag}`);
  return index;
}

/** The referrers of a subject: the referrers API where the registry has it, else the tag. */
export async function listReferrers(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  options: ReferrersOptions = {},
): Promise<Referrers> {
  const api = await getReferrersApi(client, repo, digest, options);
  if (api !== undefined) return { descriptors: api, via: "api" };
  const index = await getReferrersTagIndex(client, repo, digest, options.signal);
  const list = index ? descriptorsOf(index.json, formatRepository(repo)) : [];
  return { descriptors: byType(list, options.artifactType), via: "tag" };
}

/**
 * Makes a pushed manifest (whose `subject` is `digest`) findable as a referrer. A registry
 * with the referrers API indexes it by itself; otherwise the fallback tag's index is read,
 * the descriptor added (kept once) and the index pushed again under the tag. The index is
 * read back afterwards: a concurrent writer that replaced it makes us add ours again.
 */
export async function addReferrer(
  client: RegistryClient,
  repo: Repository,
  digest: string,
  referrer: Descriptor,
  options: { signal?: AbortSignal; attempts?: number } = {},
): Promise<ReferrersVia> {
  const { signal } = options;
  if ((await getReferrersApi(client, repo, digest, { signal })) !== undefined) return "api";
  const tag = referrersTag(digest);
  const subject = `${formatRepository(repo)}:${tag}`;
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    const current = await getReferrersTagIndex(client, repo, digest, signal);
    const base: ManifestJson = current
      ? { ...current.json }
      : { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    const list = current ? descriptorsOf(current.json, subject) : [];
    if (list.some((d) => d.digest === referrer.digest)) return "tag";
    base.manifests = [...list, referrer];
    const bytes = Buffer.from(JSON.stringify(base));
    await putManifest(client, { ...repo, tag }, bytes, MediaType.OciIndex, { signal });
    const after = await getReferrersTagIndex(client, repo, digest, signal);
    if (after && descriptorsOf(after.json, subject).some((d) => d.digest === referrer.digest))
      return "tag";
    if (attempt >= attempts)
      throw new RegistryError(subject, "the referrers index kept changing while we updated it", {
        kind: "protocol",
      });
  }
}
