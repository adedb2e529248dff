import { existsSync } from "node:fs";
import { SeekableError } from "@seekable/format";
import { parseReference, type Reference } from "@seekable/registry";

/** Where an image comes from or goes to, as the user writes it. */
export type ImageRef =
  | { kind: "docker"; text: string; ref: Reference }
  | { kind: "oci"; text: string; dir: string; tag?: string }
  | { kind: "docker-archive"; text: string; file: string; tag?: string };

const TAG_RE = /^[\w][\w.-]{0,127}$/;

/** True when the argument names an image (docker://, oci:, docker-archive:), not a file. */
export function isImageRef(text: string): boolean {
  return /^(docker:\/\/|oci:|docker-archive:)/.test(text);
}

/** Parses `docker://REF`, `oci:DIR[:TAG]` or `docker-archive:FILE[:REF]`. */
export function parseImageRef(text: string): ImageRef {
  if (text.startsWith("docker://")) return { kind: "docker", text, ref: parseReference(text) };
  if (text.startsWith("oci:")) {
    const { path, tag } = splitTag(text.slice(4), (t) => TAG_RE.test(t));
    if (path === "") throw new ImageRefError(text, "missing directory");
    return { kind: "oci", text, dir: path, ...(tag !== undefined && { tag }) };
  }
  if (text.startsWith("docker-archive:")) {
    const rest = text.slice("docker-archive:".length);
    // FILE[:REF]: the whole string is the file when it exists.
    const { path, tag } = existsSync(rest) ? { path: rest, tag: undefined } : splitTag(rest);
    if (path === "") throw new ImageRefError(text, "missing file");
    return { kind: "docker-archive", text, file: path, ...(tag !== undefined && { tag }) };
  }
  throw new ImageRefError(text, "not an image reference (docker://, oci:, docker-archive:)");
}

/** "DIR:TAG" -> DIR, TAG when the part after the last colon holds no slash. */
function splitTag(s: string, ok: (tag: string) => boolean = () => true) {
  const i = s.lastIndexOf(":");
  if (i > 0 && !s.slice(i + 1).includes("/") && ok(s.slice(i + 1))) {
    return { path: s.slice(0, i), tag: s.slice(i + 1) };
  }
  return { path: s, tag: undefined as string | undefined };
}

export class ImageRefError extends SeekableError {
  override readonly name = "ImageRefError";
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`${input}: ${reason}`, "usage");
  }
}
