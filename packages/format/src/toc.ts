import { createHash } from "node:crypto";
import { FormatError } from "./errors.js";
import { type ByteString, goQuote } from "./go-json.js";

export type EntryType =
  | "dir"
  | "reg"
  | "symlink"
  | "hardlink"
  | "char"
  | "block"
  | "fifo"
  | "chunk";
const ENTRY_TYPES = new Set<string>([
  "dir",
  "reg",
  "symlink",
  "hardlink",
  "char",
  "block",
  "fifo",
  "chunk",
]);

/** One TOC entry, with the reference's JSON keys. Absent keys mean Go's zero value. */
export interface TocEntry {
  name: string;
  type: EntryType;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  innerOffset?: number;
  devMajor?: number;
  devMinor?: number;
  /** Attribute name -> standard base64 of the raw value (Go's []byte encoding). */
  xattrs?: Record<string, string>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

export interface Toc {
  version: number;
  entries: TocEntry[];
}

// Go struct field order of estargz.TOCEntry; everything but name and type is omitempty.
const NUMBER_KEYS = new Set([
  "size",
  "mode",
  "uid",
  "gid",
  "offset",
  "innerOffset",
  "devMajor",
  "devMinor",
  "chunkOffset",
  "chunkSize",
]);
export const KEY_ORDER = [
  "name",
  "type",
  "size",
  "modtime",
  "linkName",
  "mode",
  "uid",
  "gid",
  "userName",
  "groupName",
  "offset",
  "innerOffset",
  "devMajor",
  "devMinor",
  "xattrs",
  "digest",
  "chunkOffset",
  "chunkSize",
  "chunkDigest",
] as const;

/**
 * Serializes a TOC as Go's json.MarshalIndent(toc, "", "\t") does.
 * Strings in `toc` are byte strings (see go-json.ts); the result is the exact file bytes.
 */
export function serializeToc(toc: Toc): Buffer {
  const parts: string[] = ['{\n\t"version": ', String(toc.version), ',\n\t"entries": '];
  if (toc.entries.length === 0) parts.push("[]");
  else {
    parts.push("[\n");
    toc.entries.forEach((e, i) => {
      parts.push("\t\t{\n");
      const fields: string[] = [];
      for (const k of KEY_ORDER) {
        const v = (e as unknown as Record<string, unknown>)[k];
        if (k !== "name" && k !== "type" && (v === undefined || v === 0 || v === "")) continue;
        if (k === "xattrs") {
          const keys = Object.keys(v as Record<string, string>).sort(compareBytes);
          if (keys.length === 0) continue;
          const inner = keys
            .map(
              (x) =>
                `\t\t\t\t${goQuote(x as ByteString)}: ${goQuote((v as Record<string, ByteString>)[x])}`,
            )
            .join(",\n");
          fields.push(`\t\t\t"xattrs": {\n${inner}\n\t\t\t}`);
        } else if (NUMBER_KEYS.has(k)) {
          fields.push(`\t\t\t"${k}": ${v as number}`);
        } else {
          fields.push(`\t\t\t"${k}": ${goQuote(v as ByteString)}`);
        }
      }
      parts.push(fields.join(",\n"), "\n\t\t}", i < toc.entries.length - 1 ? ",\n" : "\n");
    });
    parts.push("\t]");
  }
  parts.push("\n}");
  return Buffer.from(parts.join(""), "latin1");
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // byte strings: UTF-16 order == byte order
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Parses and validates TOC JSON bytes. Throws FormatError naming the problem. */
export function parseToc(json: Uint8Array): Toc {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString("utf8"));
  } catch (e) {
    throw new FormatError(`TOC is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null) throw new FormatError("TOC is not a JSON object");
  const r = raw as { version?: unknown; entries?: unknown };
  if (r.version !== 1)
    throw new FormatError(`unsupported TOC version ${JSON.stringify(r.version)}`);
  const entries = r.entries === null || r.entries === undefined ? [] : r.entries;
  if (!Array.isArray(entries)) throw new FormatError("TOC entries is not an array");
  for (let i = 0; i < entries.length; i++) validateEntry(entries[i], i);
  return { version: 1, entries: entries as TocEntry[] };
}

function validateEntry(e: unknown, i: number): void {
  const bad = (why: string): never => {
    throw new FormatError(`TOC entry ${i}: ${why}`);
  };
  if (typeof e !== "object" || e === null) bad("not an object");
  const x = e as Record<string, unknown>;
  if (typeof x.name !== "string") bad("name is not a string");
  if (typeof x.type !== "string" || !ENTRY_TYPES.has(x.type))
    bad(`unknown type ${JSON.stringify(x.type)}`);
  for (const k of NUMBER_KEYS) {
    const v = x[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 0))
      bad(`${k} is not a non-negative integer`);
  }
  for (const k of ["modtime", "linkName", "userName", "groupName", "digest", "chunkDigest"]) {
    if (x[k] !== undefined && typeof x[k] !== "string") bad(`${k} is not a string`);
  }
  for (const k of ["digest", "chunkDigest"]) {
    if (x[k] !== undefined && x[k] !== "" && !/^sha256:[0-9a-f]{64}$/.test(x[k] as string))
      bad(`${k} is not a sha256 digest`);
  }
  if (x.xattrs !== undefined && x.xattrs !== null) {
    if (typeof x.xattrs !== "object" || Array.isArray(x.xattrs)) bad("xattrs is not an object");
    for (const v of Object.values(x.xattrs as object))
      if (typeof v !== "string") bad("xattr value is not base64");
  }
}
