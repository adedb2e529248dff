// Hostile eStargz blobs made from valid ones: extra members (a gzip bomb), edited TOC entries,
// corrupted member bytes. The TOC member and footer are rewritten as the writer makes them.
import { constants, crc32, createDeflateRaw } from "node:zlib";
import {
  BufferRangeSource,
  emptyHeader,
  encodeFooter,
  encodeHeader,
  gzipMember,
  LayerReader,
  memberHeader,
  padding,
  parseToc,
  serializeToc,
  type Toc,
  type TocEntry,
  toByteString,
} from "@seekable/format";

/** Zeros per repeated deflate block (a whole number of 258-byte matches: the block repeats). */
const ZERO_BLOCK = 258 * 4096;

/**
 * A gzip member (Go framing, valid CRC and ISIZE) that inflates to about `bytes` zeros while
 * its own size is about bytes/1000: after a first block, deflating more zeros gives the same
 * bytes again, so the member is built by repeating that block instead of compressing gigabytes.
 */
export async function zeroBombMember(bytes: number): Promise<Buffer> {
  const blocks = Math.max(2, Math.ceil(bytes / ZERO_BLOCK));
  const d = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  d.on("data", (b: Buffer) => out.push(b));
  const zeros = Buffer.alloc(ZERO_BLOCK);
  const next = async (): Promise<Buffer> => {
    d.write(zeros);
    await new Promise<void>((r) => d.flush(constants.Z_SYNC_FLUSH, () => r()));
    return Buffer.concat(out.splice(0));
  };
  const first = await next();
  const steady = await next();
  if (!steady.equals(await next()))
    throw new Error("deflate of zeros did not reach a steady block");
  d.close();
  let crc = 0;
  for (let i = 0; i < blocks; i++) crc = crc32(zeros, crc);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((blocks * ZERO_BLOCK) % 2 ** 32, 4);
  return Buffer.concat([
    memberHeader(9),
    first,
    ...new Array<Buffer>(blocks - 1).fill(steady),
    Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]), // final empty stored block
    trailer,
  ]);
}

/** Bytes the member from zeroBombMember(bytes) inflates to. */
export function zeroBombSize(bytes: number): number {
  return Math.max(2, Math.ceil(bytes / ZERO_BLOCK)) * ZERO_BLOCK;
}

export function tarHeader(name: string, size: number): Buffer {
  const h = emptyHeader(toByteString(name), "0");
  h.size = size;
  h.mode = 0o644;
  return encodeHeader(h);
}

/** The TOC member as the writer makes it: a tar entry stargz.index.json and the tar trailer. */
function tocMember(toc: Toc): Buffer {
  const json = serializeToc(toc);
  return gzipMember(
    Buffer.concat([
      tarHeader("stargz.index.json", json.length),
      json,
      Buffer.alloc(padding(json.length)),
      Buffer.alloc(1024),
    ]),
    6,
  );
}

export interface Editor {
  toc: Toc;
  /** The blob up to the TOC member; may be modified in place. */
  payload: Buffer;
  /** Appends a member after the existing ones and returns its offset. */
  append(member: Buffer): number;
}

/** Rewrites a valid eStargz blob: `edit` changes entries, members, and payload bytes. */
export async function rewriteBlob(
  blob: Buffer,
  edit: (e: Editor) => void | Promise<void>,
): Promise<Buffer> {
  const reader = await LayerReader.open(new BufferRangeSource(blob));
  const toc = parseToc(reader.tocBytes);
  const payload = Buffer.from(blob.subarray(0, reader.footer.tocOffset));
  const extra: Buffer[] = [];
  let end = payload.length;
  await edit({
    toc,
    payload,
    append: (m) => {
      extra.push(m);
      end += m.length;
      return end - m.length;
    },
  });
  return Buffer.concat([payload, ...extra, tocMember(toc), encodeFooter(end)]);
}

/** The blob with its TOC member replaced by `member` (the footer pointing at it). */
export async function replaceTocMember(blob: Buffer, member: Buffer): Promise<Buffer> {
  const { footer } = await LayerReader.open(new BufferRangeSource(blob));
  return Buffer.concat([
    blob.subarray(0, footer.tocOffset),
    member,
    encodeFooter(footer.tocOffset),
  ]);
}

/** The TOC entry of `name` (the first of its chunks). */
export function entryOf(toc: Toc, name: string): TocEntry {
  const e = toc.entries.find((x) => x.name === name);
  if (!e) throw new Error(`${name} is not in the TOC`);
  return e;
}
