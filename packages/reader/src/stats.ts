/** What a reading command cost: printed as the `--stats` JSON line. */
export class ReadStats {
  requests = 0;
  bytesFetched = 0;
  bytesServedFromCache = 0;
  chunksVerified = 0;
  /** Layers that are not eStargz and had to be streamed whole. */
  layersStreamedWhole = 0;
  /** Plain gzip layers read lazily through an index stored beside the image. */
  layersIndexed = 0;

  toJSON(): Record<string, number> {
    return {
      requests: this.requests,
      bytesFetched: this.bytesFetched,
      bytesServedFromCache: this.bytesServedFromCache,
      chunksVerified: this.chunksVerified,
      layersStreamedWhole: this.layersStreamedWhole,
      layersIndexed: this.layersIndexed,
    };
  }
}
