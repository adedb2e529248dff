import type { Node } from "@seekable/format";
import { quoteName } from "./quote.js";

/** Human output is aligned "key  value" lines; --json is one JSON document. */
export function printRecord(
  record: Record<string, unknown>,
  json: boolean,
  out: NodeJS.WritableStream = process.stdout,
): void {
  if (json) {
    out.write(`${JSON.stringify(record)}\n`);
    return;
  }
  const width = Math.max(...Object.keys(record).map((k) => k.length));
  for (const [k, v] of Object.entries(record)) out.write(`${k.padEnd(width)}  ${v}\n`);
}

export function nodeRecord(n: Node): Record<string, unknown> {
  const r: Record<string, unknown> = {
    name: n.path,
    type: n.type,
    size: n.size,
    mode: n.mode,
    uid: n.uid,
    gid: n.gid,
    userName: n.userName,
    groupName: n.groupName,
    modtime: n.modtime,
  };
  if (n.linkName) r.linkName = n.linkName;
  if (n.type === "char" || n.type === "block") {
    r.devMajor = n.devMajor;
    r.devMinor = n.devMinor;
  }
  if (Object.keys(n.xattrs).length > 0) r.xattrs = n.xattrs;
  if (n.digest) r.digest = n.digest;
  return r;
}

const TYPE_CHAR: Record<string, string> = {
  dir: "d",
  reg: "-",
  symlink: "l",
  hardlink: "h",
  char: "c",
  block: "b",
  fifo: "p",
};

/** An `ls -l`-like line. */
export function lsLine(n: Node): string {
  const perm = n.mode & 0o777;
  const rwx = [6, 3, 0]
    .map(
      (s) =>
        ((perm >> s) & 4 ? "r" : "-") +
        ((perm >> s) & 2 ? "w" : "-") +
        ((perm >> s) & 1 ? "x" : "-"),
    )
    .join("");
  const owner = `${n.userName || n.uid}/${n.groupName || n.gid}`;
  const size =
    n.type === "char" || n.type === "block" ? `${n.devMajor},${n.devMinor}` : String(n.size);
  const name = n.path === "" ? "/" : quoteName(n.path) + (n.type === "dir" ? "/" : "");
  const link =
    n.type === "symlink"
      ? ` -> ${quoteName(n.linkName)}`
      : n.type === "hardlink"
        ? ` link to ${quoteName(n.linkName)}`
        : "";
  return `${TYPE_CHAR[n.type]}${rwx} ${owner.padEnd(12)} ${size.padStart(10)} ${(n.modtime || "-").padEnd(20)} ${name}${link}`;
}
