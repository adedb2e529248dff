export { type ChunkRef, TruncatedMemberError, verifyChunk } from "./chunk.js";
export {
  type CompressionName,
  type Compressor,
  compressionByName,
  type Decompressor,
  gzipCompression,
} from "./compression.js";
export {
  type ConvertOptions,
  type ConvertResult,
  convertLayer,
  fileInput,
  type LayerInput,
  type ResettableSink,
  SpoolError,
} from "./convert.js";
export {
  inflateFrom,
  preface,
  type ResumePoint,
  resumeStart,
  WINDOW_SIZE,
} from "./deflate-resume.js";
export {
  type ErrorKind,
  errorLine,
  FormatError,
  LimitError,
  NotEStargzError,
  NotFoundError,
  SeekableError,
  VerificationError,
} from "./errors.js";
export {
  encodeFooter,
  FOOTER_SIZE,
  type Footer,
  LEGACY_FOOTER_SIZE,
  parseFooter,
} from "./footer.js";
export {
  type ByteString,
  byteStringToBytes,
  bytesToByteString,
  fromByteString,
  goQuote,
  toByteString,
} from "./go-json.js";
export { type Checkpoint, GzipCheckpointer, gzipHeaderLength } from "./gzip-checkpoints.js";
export {
  checkpointBefore,
  GZIP_INDEX_MEDIA_TYPE,
  type GzipIndex,
  inflateSpan,
  MAX_INDEX_BYTES,
  parseGzipIndex,
  type Span,
  serializeGzipIndex,
  spanFor,
} from "./gzip-index.js";
export {
  buildGzipIndex,
  DEFAULT_INDEX_CHUNK_SIZE,
  DEFAULT_SPAN_SIZE,
  type IndexBuildOptions,
} from "./gzip-index-build.js";
export { gzipMember, memberHeader } from "./gzip-member.js";
export {
  isLandmark,
  LANDMARK_CONTENTS,
  NO_PREFETCH_LANDMARK,
  PREFETCH_LANDMARK,
} from "./landmark.js";
export {
  BufferRangeSource,
  type ByteRange,
  checkRange,
  FileRangeSource,
  type RangeSource,
} from "./range-source.js";
export {
  type ChunkCache,
  type LayerChunks,
  LayerReader,
  type Node,
  newNode,
  type OpenOptions,
  regularNode,
} from "./reader.js";
export { endStream, writeChunk } from "./stream-write.js";
export {
  cleanEntryName,
  emptyHeader,
  encodeHeader,
  formatPaxTime,
  goPathClean,
  padding,
  paxRecord,
  type TarHeader,
  type TarType,
} from "./tar-header.js";
export { describeSystemError, isSystemError, readTarEntries } from "./tar-input.js";
export {
  type EntryType,
  parseToc,
  serializeToc,
  sha256Digest,
  type Toc,
  type TocEntry,
} from "./toc.js";
export { TocIndex } from "./toc-index.js";
export { type ByteSink, formatModtime, TOC_TYPE_OF_TAR } from "./writer.js";
