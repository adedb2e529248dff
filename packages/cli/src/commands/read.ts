import type { Node } from "@seekable/format";
import { openBlob } from "../blob.js";
import { CliError } from "../errors.js";
import { lsLine, nodeRecord, printRecord } from "../present.js";

export interface ReadFlags {
  json?: boolean;
  tocDigest?: string;
}

export async function lsCommand(
  blob: string,
  path: string | undefined,
  flags: ReadFlags,
): Promise<void> {
  const r = await openBlob(blob, flags);
  let nodes: Node[];
  if (path === undefined) nodes = [...r.walk()].filter((n) => n.path !== "");
  else {
    const n = r.lookup(path);
    if (!n) throw new CliError(`${path}: no such file or directory in the layer`);
    nodes = n.type === "dir" ? r.readdir(path) : [n];
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(nodes.map(nodeRecord))}\n`);
    return;
  }
  process.stdout.write(nodes.map((n) => `${lsLine(n)}\n`).join(""));
}

export async function catCommand(blob: string, paths: string[], flags: ReadFlags): Promise<void> {
  const r = await openBlob(blob, flags);
  for (const p of paths) {
    if (!r.lookup(p)) throw new CliError(`${p}: no such file in the layer`);
  }
  for (const p of paths) {
    for await (const chunk of r.stream(p)) {
      if (!process.stdout.write(chunk))
        await new Promise<void>((res) => process.stdout.once("drain", () => res()));
    }
  }
}

export async function tocCommand(blob: string, flags: ReadFlags): Promise<void> {
  const r = await openBlob(blob, flags);
  process.stdout.write(r.tocBytes);
}

export async function verifyCommand(blob: string, flags: ReadFlags): Promise<void> {
  const r = await openBlob(blob, flags);
  const res = await r.verify();
  printRecord(
    {
      ok: true,
      format: r.legacy ? "stargz" : "estargz",
      tocDigest: r.tocDigest,
      tocDigestChecked: !!flags.tocDigest,
      files: res.files,
      chunks: res.chunks,
      bytes: res.bytes,
    },
    !!flags.json,
  );
}
