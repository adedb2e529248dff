import { type Node, writeChunk } from "@seekable/format";
import { type FileRef, readFiles } from "@seekable/reader";
import { CliError } from "../errors.js";
import { lsLine, nodeRecord, printRecord } from "../present.js";
import { openSession, type ReadingFlags, type Session } from "../target.js";

/** Runs `body` on an opened BLOB; --stats is printed and resources freed however it ends. */
async function withSession(
  blob: string,
  flags: ReadingFlags,
  body: (s: Session) => Promise<void>,
): Promise<void> {
  const s = await openSession(blob, flags);
  performance.mark("cli: session open");
  try {
    await body(s);
    performance.mark("cli: output written");
  } finally {
    await s.finish();
    performance.mark("cli: session finished");
  }
}

export function lsCommand(
  blob: string,
  path: string | undefined,
  flags: ReadingFlags,
): Promise<void> {
  return withSession(blob, flags, async ({ target }) => {
    let nodes: Node[];
    if (target.kind === "layer") {
      // One layer is listed as stored: whiteouts and landmarks included.
      const view = target.layers[0].view;
      if (path === undefined) nodes = [...view.walk()].filter((n) => n.path !== "");
      else {
        const n = view.lookup(path);
        if (!n) throw new CliError(`${path}: no such file or directory in the layer`);
        nodes = n.type === "dir" ? [...(n.children?.values() ?? [])] : [n];
      }
    } else if (path === undefined) {
      nodes = [...target.fs.walk()].map((m) => m.node).filter((n) => n.path !== "");
    } else {
      const m = target.fs.lookup(path);
      if (!m) throw new CliError(`${path}: no such file or directory in the image`);
      nodes = m.children ? target.fs.readdir(path).map((c) => c.node) : [m.node];
    }
    if (flags.json) process.stdout.write(`${JSON.stringify(nodes.map(nodeRecord))}\n`);
    else process.stdout.write(nodes.map((n) => `${lsLine(n)}\n`).join(""));
  });
}

export function catCommand(blob: string, paths: string[], flags: ReadingFlags): Promise<void> {
  return withSession(blob, flags, async ({ target }) => {
    const files: FileRef[] = paths.map((p) => {
      if (target.kind === "layer") {
        const view = target.layers[0].view;
        if (!view.lookup(p)) throw new CliError(`${p}: no such file in the ${target.kind}`);
        return { layer: view, path: p };
      }
      const m = target.fs.lookup(p);
      if (!m) throw new CliError(`${p}: no such file in the ${target.kind}`);
      return { layer: m.layer, path: m.node.path };
    });
    // In windows of bounded bytes, one multi-range read per layer each, written in order.
    for await (const chunk of readFiles(files)) await writeChunk(process.stdout, chunk);
  });
}

export function tocCommand(blob: string, flags: ReadingFlags): Promise<void> {
  return withSession(blob, flags, async ({ target }) => {
    const eStargz = target.layers.filter((l) => l.reader);
    if (target.kind !== "layer" && target.layers.length !== 1) {
      throw new CliError(
        `the image has ${target.layers.length} layers: pick one with --layer N (0 is the bottom)`,
      );
    }
    const reader = eStargz[0]?.reader;
    if (!reader) throw new CliError("the layer is not eStargz: it has no TOC");
    process.stdout.write(reader.tocBytes);
  });
}

export function verifyCommand(blob: string, flags: ReadingFlags): Promise<void> {
  return withSession(blob, flags, async ({ target }) => {
    const layers = [];
    for (const l of target.layers) {
      if (!l.reader) {
        // Streamed whole: its blob digest was checked while it streamed.
        layers.push({ digest: l.digest, format: "tar.gz", blobDigestChecked: true });
        continue;
      }
      const res = await l.reader.verify();
      layers.push({
        ...(l.digest ? { digest: l.digest } : {}),
        format: l.reader.legacy ? "stargz" : "estargz",
        tocDigest: l.reader.tocDigest,
        tocDigestChecked: !!l.expectedTocDigest,
        ...res,
      });
    }
    if (target.layers.length === 1) printRecord({ ok: true, ...layers[0] }, !!flags.json);
    else if (flags.json) process.stdout.write(`${JSON.stringify({ ok: true, layers })}\n`);
    else for (const l of layers) printRecord({ ok: true, ...l }, false);
  });
}
