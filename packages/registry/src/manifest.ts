import { repositoryScope } from "./auth.js";
import { readBody } from "./body.js";
import { header, type RegistryClient } from "./client.js";
import { Digester, digestOf } from "./digest.js";
import { RegistryError } from "./errors.js";
import {
  bareMediaType,
  isImageManifestMediaType,
  isIndexMediaType,
  MANIFEST_ACCEPT,
} from "./media-types.js";
import {
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type Platform,
  selectPlatform,
} from "./platform.js";
import { formatReference, manifestTarget, type Reference, withTarget } from "./reference.js";

/** A manifest or index exactly as stored, with its verified digest. */
export interface ManifestResult {
  reference: Reference;
  mediaType: string;
  digest: string;
  size: number;
  bytes: Uint8Array;
  /** The parsed JSON. */
  json: ManifestJson;
}

export interface ManifestJson {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  [key: string]: unknown;
}

export interface ManifestOptions {
  accept?: readonly string[];
  signal?: AbortSignal;
  /** Refuse larger manifests (default 4 MiB, the size registries must accept). */
  maxBytes?: number;
}

const MAX_MANIFEST = 4 << 20;
/**
 * An image's layers, at most: overlayfs stacks no more than 500 lower layers, so an image
 * with more cannot run anyway, and a reader never opens thousands for one manifest.
 */
export const MAX_IMAGE_LAYERS = 500;
/** The sum of an image's claimed layer sizes, at most (no real image comes near it). */
export const MAX_IMAGE_BYTES = 2 ** 40;

function manifestPath(ref: Reference): string {
  return `/v2/${ref.repository}/manifests/${encodeURIComponent(manifestTarget(ref))}`;
}

/**
 * GETs a manifest or index. The bytes are checked against the reference's digest when it is
 * pinned, else against Docker-Content-Digest when the registry sends one.
 */
export async function getManifest(
  client: RegistryClient,
  ref: Reference,
  options: ManifestOptions = {},
): Promise<ManifestResult> {
  const subject = formatReference(ref);
  const limit = options.maxBytes ?? MAX_MANIFEST;
  return client.call(
    {
      method: "GET",
      registry: ref.registry,
      path: manifestPath(ref),
      scopes: [repositoryScope(ref.repository, "pull")],
      subject,
      headers: { accept: (options.accept ?? MANIFEST_ACCEPT).join(", ") },
      signal: options.signal,
      expect: [200],
    },
    async (res) => {
      const length = Number(header(res, "content-length") ?? Number.NaN);
      if (length > limit) {
        throw new RegistryError(
          subject,
          `manifest of ${length} bytes exceeds the ${limit}-byte limit`,
          { kind: "protocol" },
        );
      }
      const bytes = await readBody(res.body, limit, [client.stats], subject);
      const expected = ref.digest ?? header(res, "docker-content-digest");
      const digest = expected ? digestLike(bytes, expected, subject) : digestOf(bytes);
      if (expected !== undefined && digest !== expected) {
        throw new RegistryError(
          subject,
          `manifest digest mismatch: got ${digest}, expected ${expected}`,
          {
            kind: "verification",
          },
        );
      }
      let json: ManifestJson;
      try {
        json = JSON.parse(Buffer.from(bytes).toString("utf8")) as ManifestJson;
      } catch {
        throw new RegistryError(subject, "manifest is not valid JSON", { kind: "protocol" });
      }
      if (json === null || typeof json !== "object" || Array.isArray(json)) {
        throw new RegistryError(subject, "manifest is not a JSON object", { kind: "protocol" });
      }
      const headerType = bareMediaType(header(res, "content-type"));
      // The stored mediaType field wins over a generic Content-Type.
      const mediaType = typeof json.mediaType === "string" ? json.mediaType : headerType;
      return { reference: ref, mediaType, digest, size: bytes.length, bytes, json };
    },
  );
}

function digestLike(bytes: Uint8Array, like: string, subject: string): string {
  try {
    const d = new Digester(like);
    d.update(bytes);
    return d.digest();
  } catch (e) {
    throw new RegistryError(subject, (e as Error).message, { kind: "verification" });
  }
}

/** HEAD a manifest: its descriptor, or undefined when it does not exist. Not counted as a pull on Docker Hub. */
export async function headManifest(
  client: RegistryClient,
  ref: Reference,
  options: Pick<ManifestOptions, "accept" | "signal"> = {},
): Promise<Descriptor | undefined> {
  const subject = formatReference(ref);
  return client.call(
    {
      method: "HEAD",
      registry: ref.registry,
      path: manifestPath(ref),
      scopes: [repositoryScope(ref.repository, "pull")],
      subject,
      headers: { accept: (options.accept ?? MANIFEST_ACCEPT).join(", ") },
      signal: options.signal,
      expect: [200, 404],
    },
    async (res) => {
      res.body.resume();
      if (res.status === 404) return undefined;
      const digest = header(res, "docker-content-digest") ?? ref.digest;
      if (!digest)
        throw new RegistryError(subject, "HEAD gave no Docker-Content-Digest", {
          kind: "protocol",
        });
      return {
        mediaType: bareMediaType(header(res, "content-type")),
        digest,
        size: Number(header(res, "content-length") ?? 0),
      };
    },
  );
}

/** The image manifest for a platform, going through an index when the reference names one. */
export interface ImageManifestResult {
  manifest: ManifestResult;
  /** The index it was chosen from, when there was one. */
  index?: ManifestResult;
  platform?: Platform;
}

export async function getImageManifest(
  client: RegistryClient,
  ref: Reference,
  options: ManifestOptions & { platform?: Platform } = {},
): Promise<ImageManifestResult> {
  const top = await getManifest(client, ref, options);
  if (isImageManifestMediaType(top.mediaType)) return { manifest: checkImageLayers(top) };
  if (!isIndexMediaType(top.mediaType) && !Array.isArray(top.json.manifests)) {
    throw new RegistryError(
      formatReference(ref),
      `unsupported manifest type ${JSON.stringify(top.mediaType)}`,
      {
        kind: "unsupported",
      },
    );
  }
  const wanted = options.platform ?? hostPlatform();
  const entries = top.json.manifests ?? [];
  const chosen = selectPlatform(entries, wanted);
  if (!chosen) {
    const available = entries
      .filter((d) => d.platform?.os && d.platform.os !== "unknown")
      .map((d) => formatPlatform(d.platform as Platform));
    throw new RegistryError(
      formatReference(ref),
      `no manifest for ${formatPlatform(wanted)} (available: ${available.join(", ") || "none"})`,
      { kind: "not-found" },
    );
  }
  const manifest = await getManifest(client, withTarget(ref, { digest: chosen.digest }), options);
  return { manifest: checkImageLayers(manifest), index: top, platform: chosen.platform };
}

/**
 * An image manifest's layer list within the stated bounds (MAX_IMAGE_LAYERS, MAX_IMAGE_BYTES),
 * every entry a descriptor with a digest and a size, else one line naming the manifest.
 */
export function checkImageLayers(m: ManifestResult): ManifestResult {
  const layers = m.json.layers ?? [];
  const subject = formatReference(m.reference);
  const refuse = (cause: string) => new RegistryError(subject, cause, { kind: "unsupported" });
  if (!Array.isArray(layers)) throw refuse("manifest's layers is not a list");
  if (layers.length > MAX_IMAGE_LAYERS) {
    throw refuse(
      `manifest lists ${layers.length} layers; at most ${MAX_IMAGE_LAYERS} are supported (overlayfs stacks no more)`,
    );
  }
  let total = 0;
  for (const [i, l] of layers.entries()) {
    if (typeof l?.digest !== "string" || !Number.isSafeInteger(l.size) || l.size < 0) {
      throw refuse(`manifest's layer ${i} has no valid digest and size`);
    }
    total += l.size;
  }
  if (total > MAX_IMAGE_BYTES) {
    throw refuse(
      `manifest's layers claim ${total} bytes; at most ${MAX_IMAGE_BYTES} are supported`,
    );
  }
  return m;
}

/**
 * PUTs a manifest under a tag or digest with its mediaType as Content-Type; returns the
 * digest, checked against the one the registry reports.
 */
export async function putManifest(
  client: RegistryClient,
  ref: Reference,
  bytes: Uint8Array,
  mediaType: string,
  options: { signal?: AbortSignal } = {},
): Promise<string> {
  const subject = formatReference(ref);
  const digest = digestOf(bytes, ref.digest ?? "sha256:");
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new RegistryError(subject, `manifest bytes have digest ${digest}`, {
      kind: "verification",
    });
  }
  return client.call(
    {
      method: "PUT",
      registry: ref.registry,
      path: manifestPath(ref),
      scopes: [repositoryScope(ref.repository, "pull,push")],
      subject,
      headers: { "content-type": mediaType },
      body: bytes,
      signal: options.signal,
      expect: [200, 201],
    },
    async (res) => {
      res.body.resume();
      const reported = header(res, "docker-content-digest");
      if (reported !== undefined && reported !== digest) {
        throw new RegistryError(subject, `registry stored digest ${reported}, expected ${digest}`, {
          kind: "verification",
        });
      }
      return digest;
    },
  );
}

/** Deletes a manifest by digest (registries refuse tags). */
export async function deleteManifest(
  client: RegistryClient,
  ref: Reference,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  await client.call(
    {
      method: "DELETE",
      registry: ref.registry,
      path: manifestPath(ref),
      scopes: [repositoryScope(ref.repository, "pull,push")],
      subject: formatReference(ref),
      signal: options.signal,
      expect: [202, 200],
    },
    async (res) => {
      res.body.resume();
    },
  );
}
