// What a reader of a converted fixture must report, as computed by the reference tool
// (`estargz-ref expect` / `fixtures` write FIXTURE.expected.json with Go's archive/tar and
// the reference's rules: last duplicate wins, landmarks and stargz.index.json dropped).
import { readFileSync } from "node:fs";
import { posix } from "node:path";
import { fixture } from "./paths.js";

export interface ExpectedEntry {
  /** Cleaned path ("" for the root). */
  name: string;
  /** The tar name as stored (the reference keeps it raw in the TOC). */
  rawName: string;
  type: "dir" | "reg" | "symlink" | "hardlink" | "char" | "block" | "fifo";
  size: number;
  mode: number;
  uid: number;
  gid: number;
  userName: string;
  groupName: string;
  linkName: string;
  /** RFC 3339, rounded to the second; "" when the mtime is zero or the epoch. */
  modtime: string;
  devMajor: number;
  devMinor: number;
  /** Attribute name -> standard base64 of the raw value. */
  xattrs: Record<string, string>;
  digest?: string;
  /** For reg and hardlink: the bytes a reader returns (hardlinks resolved). */
  contentSize: number;
  contentDigest?: string;
}

export interface Expected {
  entries: ExpectedEntry[];
  /** Cleaned names in the reference's TOC order without prioritized files (landmark first). */
  order: string[];
}

const cache = new Map<string, Expected>();

export function expectedFor(fixtureName: string): Expected {
  let e = cache.get(fixtureName);
  if (!e) {
    e = JSON.parse(readFileSync(fixture(`${fixtureName}.expected.json`), "utf8")) as Expected;
    cache.set(fixtureName, e);
  }
  return e;
}

/** The reference's cleanEntryName: path.Clean("/"+name) without the leading slash. */
export function cleanEntryName(name: string): string {
  const p = posix.normalize(`/${name}`);
  return p.replace(/\/+$/, "").replace(/^\/+/, "");
}

export const LANDMARKS = new Set([".prefetch.landmark", ".no.prefetch.landmark"]);
