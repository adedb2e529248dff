import { RegistryError } from "./errors.js";

/** An image reference: HOST[:PORT]/NAME[:TAG][@DIGEST] with Docker Hub defaults applied. */
export interface Reference {
  /** Registry as the user names it ("docker.io", "127.0.0.1:5000"); Docker Hub is "docker.io". */
  readonly registry: string;
  /** Repository path, e.g. "library/alpine". */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

export const DOCKER_HUB = "docker.io";
/** Docker Hub's API host: "docker.io" itself serves no registry API. */
export const DOCKER_HUB_ENDPOINT = "registry-1.docker.io";

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:.]+\\])(?::[0-9]{1,5})?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const NAME_MAX = 255;

export interface ParseReferenceOptions {
  /** Fill in "latest" when neither tag nor digest is given (default true). */
  defaultTag?: boolean;
}

/** Parses a reference the way `docker pull` does; a leading `docker://` is accepted. */
export function parseReference(input: string, options: ParseReferenceOptions = {}): Reference {
  const fail = (why: string): never => {
    throw new RegistryError(JSON.stringify(input), `invalid reference: ${why}`, { kind: "usage" });
  };
  let rest = input.trim();
  if (rest.startsWith("docker://")) rest = rest.slice("docker://".length);
  if (rest === "") fail("empty");

  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(digest, fail);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(`bad tag ${JSON.stringify(tag)}`);
  }

  // Like Docker: the first component is a host only if it looks like one.
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first) {
      registry = first;
      path = rest.slice(slash + 1);
      if (!DOMAIN_RE.test(registry)) fail(`bad registry host ${JSON.stringify(registry)}`);
      const port = /:(\d+)$/.exec(registry);
      if (port && Number(port[1]) > 65535) fail(`bad port in ${JSON.stringify(registry)}`);
    }
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;

  if (path === "") fail("missing repository name");
  for (const part of path.split("/")) {
    if (!PATH_COMPONENT_RE.test(part)) {
      fail(
        part.toLowerCase() !== part
          ? "repository name must be lowercase"
          : `bad repository name component ${JSON.stringify(part)}`,
      );
    }
  }
  if (registry.length + 1 + path.length > NAME_MAX) fail(`name longer than ${NAME_MAX} characters`);

  if (tag === undefined && digest === undefined && options.defaultTag !== false) tag = "latest";
  return {
    registry,
    repository: path,
    ...(tag !== undefined && { tag }),
    ...(digest !== undefined && { digest }),
  };
}

function checkDigest(digest: string, fail: (why: string) => never): void {
  if (!DIGEST_RE.test(digest)) fail(`bad digest ${JSON.stringify(digest)}`);
  const [alg, hex] = digest.split(":") as [string, string];
  const want = alg === "sha256" ? 64 : alg === "sha512" ? 128 : 0;
  if (want > 0 && !new RegExp(`^[a-f0-9]{${want}}$`).test(hex)) {
    fail(`bad ${alg} digest ${JSON.stringify(digest)}`);
  }
}

/** "HOST/NAME[:TAG][@DIGEST]", always with the registry, parseable by parseReference. */
export function formatReference(ref: Reference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The repository alone ("HOST/NAME"): the subject of blob operations. */
export function formatRepository(ref: Pick<Reference, "registry" | "repository">): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The same repository pointing at another tag or digest. */
export function withTarget(ref: Reference, target: { tag?: string; digest?: string }): Reference {
  return { registry: ref.registry, repository: ref.repository, ...target };
}

/** What to put after /manifests/: the digest when pinned, else the tag. */
export function manifestTarget(ref: Reference): string {
  const target = ref.digest ?? ref.tag;
  if (target === undefined) {
    throw new RegistryError(formatReference(ref), "reference has neither tag nor digest", {
      kind: "usage",
    });
  }
  return target;
}

/** The host[:port] that serves the registry API for a registry name. */
export function registryHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry;
}

/** Hostname without port or IPv6 brackets. */
export function hostname(hostPort: string): string {
  const v6 = /^\[([^\]]+)\]/.exec(hostPort);
  if (v6) return v6[1] as string;
  const i = hostPort.lastIndexOf(":");
  return i >= 0 ? hostPort.slice(0, i) : hostPort;
}

/** localhost, 127.0.0.0/8 and ::1 default to plain HTTP, like Docker's insecure defaults. */
export function isLoopbackHost(hostPort: string): boolean {
  const h = hostname(hostPort).toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m?.slice(1).every((x) => Number(x) <= 255) ?? false;
}

/** A blob URL `http(s)://HOST/v2/NAME/blobs/DIGEST` as a reference plus the scheme it named. */
export function parseBlobUrl(url: string): { reference: Reference; plainHttp: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RegistryError(url, "invalid blob URL", { kind: "usage" });
  }
  const m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(u.pathname);
  if ((u.protocol !== "http:" && u.protocol !== "https:") || !m) {
    throw new RegistryError(url, "not a blob URL (want http(s)://HOST/v2/NAME/blobs/DIGEST)", {
      kind: "usage",
    });
  }
  // "localhost:5000" is always a host here, so parse with a placeholder host and put it back.
  const parsed = parseReference(`registry.invalid/${m[1]}@${decodeURIComponent(m[2] as string)}`);
  const reference: Reference = {
    registry: u.host,
    repository: parsed.repository,
    digest: parsed.digest as string,
  };
  return { reference, plainHttp: u.protocol === "http:" };
}
