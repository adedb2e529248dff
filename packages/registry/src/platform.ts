import { RegistryError } from "./errors.js";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** An entry of an index (or any descriptor): what a manifest points at. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
}

const ARCH_ALIASES: Record<string, [string, string?]> = {
  x86_64: ["amd64"],
  "x86-64": ["amd64"],
  aarch64: ["arm64"],
  armhf: ["arm", "v7"],
  armel: ["arm", "v6"],
  i386: ["386"],
  i686: ["386"],
};

// Variants an index may leave out: the arch's baseline.
const DEFAULT_VARIANT: Record<string, string> = { arm64: "v8", arm: "v7", amd64: "v1" };

/** Parses "os/arch[/variant]" ("linux/arm64/v8", "linux/amd64"). */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new RegistryError(JSON.stringify(text), "invalid platform (want os/arch[/variant])", {
      kind: "usage",
    });
  }
  return normalizePlatform({
    os: parts[0] as string,
    architecture: parts[1] as string,
    variant: parts[2],
  });
}

export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias[0];
    variant ??= alias[1];
  }
  if (variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  const { variant: _, ...rest } = p;
  return variant ? { ...rest, os, architecture, variant } : { ...rest, os, architecture };
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm" };
  const os = process.platform === "win32" ? "windows" : process.platform;
  return { os, architecture: arch[process.arch] ?? process.arch };
}

function variantOf(p: Platform): string | undefined {
  return p.variant ?? DEFAULT_VARIANT[p.architecture];
}

/**
 * Picks the manifest for a platform from an index's entries. Without a requested variant the
 * arch's baseline variant is preferred, then the first match (attestations never match).
 */
export function selectPlatform(
  manifests: readonly Descriptor[],
  wanted: Platform,
): Descriptor | undefined {
  const want = normalizePlatform(wanted);
  const candidates = manifests.filter((d) => {
    if (!d.platform?.os || !d.platform.architecture) return false;
    const p = normalizePlatform(d.platform);
    return p.os === want.os && p.architecture === want.architecture;
  });
  if (want.variant !== undefined) {
    return candidates.find(
      (d) => variantOf(normalizePlatform(d.platform as Platform)) === variantOf(want),
    );
  }
  return (
    candidates.find(
      (d) =>
        variantOf(normalizePlatform(d.platform as Platform)) === DEFAULT_VARIANT[want.architecture],
    ) ?? candidates[0]
  );
}
