import type { LayerReader, Node } from "@seekable/format";
import { IndexedLayer, type LayerView, type MergedNode, type OpenedLayer } from "@seekable/reader";
import { resolved } from "./attr.js";
import { type ChunkItem, type ChunkPool, chunkKey } from "./chunks.js";

/** Where a regular file's bytes come from. */
interface Source {
  layer: number;
  reader?: LayerReader;
  node: Node;
}

/**
 * File contents for FUSE reads: eStargz files chunk by chunk through the pool (only the
 * chunks a read covers, verified by the reader); other files (legacy stargz without chunk
 * digests, layers streamed whole) through the reader's own read.
 */
export class Content {
  private readonly layers = new Map<LayerView, { index: number; reader?: LayerReader }>();
  /** Layers read through a gzip index, by the view the merged image names. */
  private readonly indexedLayers = new Map<LayerView, IndexedLayer>();

  constructor(
    layers: OpenedLayer[],
    readonly pool: ChunkPool,
  ) {
    layers.forEach((l, index) => {
      this.layers.set(l.view, { index, reader: l.reader });
      // The layer store wraps each view (overlay whiteouts); the indexed layer is inside.
      const inner =
        l.view instanceof IndexedLayer ? l.view : (l.view as { reader?: unknown }).reader;
      if (inner instanceof IndexedLayer) {
        this.indexedLayers.set(l.view, inner);
        this.indexedLayers.set(inner, inner);
      }
      if (l.reader) {
        // A merged view of the bare readers (the layer store's loader prefetch) finds it too.
        this.layers.set(l.reader, { index, reader: l.reader });
        pool.addLayer(l.reader);
      }
    });
  }

  private source(m: MergedNode): Source {
    const l = this.layers.get(m.layer);
    return { layer: l?.index ?? -1, reader: l?.reader, node: resolved(m.node) };
  }

  /** The indexed gzip layer a file's bytes come from, if they do. */
  indexed(m: MergedNode): IndexedLayer | undefined {
    return this.indexedLayers.get(m.layer);
  }

  /** Fetches [from, to) of a file ahead of reads (read-ahead); errors are left to the reads. */
  ahead(m: MergedNode, from: number, to: number): void {
    const items = this.items(m, from, to)?.filter((it) => !this.pool.has(it.key));
    if (items) {
      if (items.length > 0) this.pool.get(items, false).catch(() => {});
      return;
    }
    const ix = this.indexed(m);
    if (ix && !ix.readAtHand(m.node.path, from, to - from))
      ix.read(m.node.path, from, to - from).catch(() => {});
  }

  /** The chunk items covering [start, end) of the file, or undefined when not chunked. */
  items(m: MergedNode, start: number, end: number): ChunkItem[] | undefined {
    const s = this.source(m);
    if (!s.reader || s.node.chunks.some((c) => !c.chunkDigest)) return undefined;
    const out: ChunkItem[] = [];
    for (const ref of s.node.chunks) {
      if (ref.chunkOffset >= end) break;
      if (ref.chunkOffset + ref.chunkSize <= start) continue;
      out.push({
        key: chunkKey(s.layer, ref),
        reader: s.reader,
        node: s.node,
        ref,
      });
    }
    return out;
  }

  /**
   * [offset, offset+length) of a file through the pool, fetched when missing as a guess (not
   * a read the kernel waits for); undefined when the file is not chunked or the range is
   * outside it.
   */
  async bytes(m: MergedNode, offset: number, length: number): Promise<Uint8Array | undefined> {
    const ix = this.indexed(m);
    const size = resolved(m.node).size;
    if (ix)
      return length > 0 && offset + length <= size
        ? ix.read(m.node.path, offset, length)
        : undefined;
    const items = length > 0 ? this.items(m, offset, offset + length) : undefined;
    if (!items || items.length === 0) return undefined;
    const datas = await this.pool.get(items, false);
    const buf = Buffer.allocUnsafe(length);
    return copyChunks(items, datas, buf, offset, offset + length) === length ? buf : undefined;
  }

  /** The same from chunks in memory only, or undefined. */
  bytesAtHand(m: MergedNode, offset: number, length: number): Uint8Array | undefined {
    const ix = this.indexed(m);
    if (ix)
      return length > 0 && offset + length <= resolved(m.node).size
        ? ix.readAtHand(m.node.path, offset, length)
        : undefined;
    const items = length > 0 ? this.items(m, offset, offset + length) : undefined;
    const datas = items && items.length > 0 ? this.pool.peek(items) : undefined;
    if (!items || !datas) return undefined;
    const buf = Buffer.allocUnsafe(length);
    return copyChunks(items, datas, buf, offset, offset + length) === length ? buf : undefined;
  }

  /**
   * Reads up to `length` bytes at `offset` into `buf`; the count (0 at the end) comes
   * back synchronously when every chunk is at hand, else as a promise.
   */
  read(m: MergedNode, buf: Buffer, length: number, offset: number): number | Promise<number> {
    const size = resolved(m.node).size;
    const end = Math.min(size, offset + length);
    if (offset >= end) return 0;
    const items = this.items(m, offset, end);
    if (!items) {
      // An indexed file whose chunks are in memory is answered at once, like a pool hit.
      const hand = this.indexed(m)?.readAtHand(m.node.path, offset, end - offset);
      if (hand) {
        buf.set(hand, 0);
        return hand.length;
      }
      return m.layer.read(m.node.path, offset, end - offset).then((data) => {
        buf.set(data, 0);
        return data.length;
      });
    }
    const ready = this.pool.peek(items);
    if (ready) return copyChunks(items, ready, buf, offset, end);
    return this.pool.get(items, true).then((datas) => copyChunks(items, datas, buf, offset, end));
  }
}

/** Copies [offset, end) of a file out of its chunks' bytes into `buf`; returns the count. */
export function copyChunks(
  items: ChunkItem[],
  datas: Uint8Array[],
  buf: Buffer,
  offset: number,
  end: number,
): number {
  let n = 0;
  for (let k = 0; k < items.length; k++) {
    const { ref } = items[k];
    const from = Math.max(offset, ref.chunkOffset);
    const to = Math.min(end, ref.chunkOffset + ref.chunkSize);
    buf.set(datas[k].subarray(from - ref.chunkOffset, to - ref.chunkOffset), from - offset);
    n += to - from;
  }
  return n;
}
