import type { IndexedLayer, MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import type { ChunkItem } from "../chunks.js";
import type { Content } from "../content.js";
import type { Guessing, GuessKind } from "./guessing.js";

/**
 * What a guesser may do with an image's files: the narrow seam between guessing and how
 * bytes arrive (eStargz chunks through a pool today; indexed gzip spans next).
 */
export interface GuessFiles {
  /** The file is served lazily (a guess about it can save a round trip). */
  lazy(m: MergedNode): boolean;
  /** Bytes [offset, offset+length) of a file, fetched as a guess when missing; undefined when not lazy. */
  bytes(m: MergedNode, offset: number, length: number): Promise<Uint8Array | undefined>;
  /** The same from what is in memory only, or undefined. */
  bytesAtHand(m: MergedNode, offset: number, length: number): Uint8Array | undefined;
  /** Fetches `files` (each once) within `guessing`'s bounds; never rejects. */
  fetch(files: MergedNode[], kind: GuessKind, guessing: Guessing): Promise<void>;
}

/** A file is fetched whole up to this many compressed bytes, else its first chunk. */
const WHOLE_LIMIT = 4 << 20;

/**
 * GuessFiles over Contents: `contentOf` says where a node's bytes come from (the mount has one
 * Content for the image, the layer store one per layer; undefined for a file not served
 * lazily). A fetch is one pool call per Content.
 */
export class ContentFiles implements GuessFiles {
  constructor(private readonly contentOf: (m: MergedNode) => Content | undefined) {}

  lazy(m: MergedNode): boolean {
    return this.contentOf(m) !== undefined;
  }

  bytes(m: MergedNode, offset: number, length: number): Promise<Uint8Array | undefined> {
    return this.contentOf(m)?.bytes(m, offset, length) ?? Promise.resolve(undefined);
  }

  bytesAtHand(m: MergedNode, offset: number, length: number): Uint8Array | undefined {
    return this.contentOf(m)?.bytesAtHand(m, offset, length);
  }

  async fetch(files: MergedNode[], kind: GuessKind, guessing: Guessing): Promise<void> {
    const byContent = new Map<Content, ChunkItem[]>();
    const byIndexed = new Map<IndexedLayer, { file: string; bytes: number }[]>();
    const seen = new Set<object>();
    for (const f of files) {
      const n = resolved(f.node);
      const content = this.contentOf(f);
      if (!content || seen.has(n)) continue;
      seen.add(n);
      const ix = content.indexed(f);
      if (ix) {
        // Whole files, all spans of the layer in one batched read (ix.prefetch).
        if (n.size > WHOLE_LIMIT || ix.readAtHand(f.node.path, 0, n.size)) continue;
        const list = byIndexed.get(ix) ?? [];
        list.push({ file: f.node.path, bytes: n.size });
        byIndexed.set(ix, list);
        continue;
      }
      let packed = 0;
      for (const c of n.chunks) packed += c.nextOffset - c.offset;
      const end = packed <= WHOLE_LIMIT ? n.size : Math.min(n.size, 1);
      const its = end > 0 ? content.items(f, 0, end) : undefined;
      if (!its) continue;
      const list = byContent.get(content) ?? [];
      for (const it of its) list.push(it);
      byContent.set(content, list);
    }
    await Promise.all([
      ...[...byContent].map(([content, items]) => guessing.fetch(content.pool, items, kind)),
      ...[...byIndexed].map(([ix, list]) =>
        guessing.fetchFiles(list, (paths) => ix.prefetch(paths)),
      ),
    ]);
  }
}
