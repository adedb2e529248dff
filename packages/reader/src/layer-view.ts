import type { Node } from "@seekable/format";

/** One layer as a file tree: an eStargz LayerReader, or a layer streamed whole. */
export interface LayerView {
  /** Every node, parents before children ("" is the root). */
  walk(): Iterable<Node>;
  lookup(path: string): Node | undefined;
  read(path: string, offset?: number, length?: number, signal?: AbortSignal): Promise<Uint8Array>;
  stream(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  /** Fetches these files' data ahead of reads, in as few requests as possible. */
  prefetch?(paths: string[], signal?: AbortSignal): Promise<void>;
}
