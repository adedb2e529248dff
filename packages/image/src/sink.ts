import type { ResettableSink } from "@seekable/format";
import type { Descriptor, ImageSource } from "./source.js";

/** A converted layer being written: bytes arrive in order, then commit or abort. */
export interface LayerSink extends ResettableSink {
  reset(): Promise<void>;
  commit(blob: { digest: string; size: number }): Promise<void>;
  abort(): Promise<void>;
}

/** Where a converted image goes: a registry or an OCI layout. */
export interface ImageSink {
  readonly name: string;
  /** A sink for one converted layer, its digest known only at the end. */
  layer(): Promise<LayerSink>;
  /** Copies a blob unchanged from the source unless it is already there. */
  copyBlob(desc: Descriptor, source: ImageSource): Promise<void>;
  /** Writes a small blob (a config) unless it is already there. */
  putBlob(desc: Descriptor, bytes: Uint8Array): Promise<void>;
  /** A manifest an index points at (by digest). */
  putManifest(desc: Descriptor, bytes: Uint8Array): Promise<void>;
  /** The top manifest or index, under the destination's tag: the last write. */
  putRoot(desc: Descriptor, bytes: Uint8Array): Promise<void>;
  /** Called when the conversion failed (removes what only this run created, if it can). */
  discard(): Promise<void>;
  close(): Promise<void>;
}
