import { SeekableError } from "@seekable/format";
import { type ContentRange, parseContentRange } from "./content-range.js";

export interface BytePart extends ContentRange {
  data: Uint8Array;
}

/** Why a multipart body could not be parsed; `truncated` bodies are worth fetching again. */
export class MultipartError extends SeekableError {
  override readonly name = "MultipartError";
  constructor(
    message: string,
    readonly truncated: boolean,
  ) {
    super(message, "protocol");
  }
}

/** The boundary of a `multipart/byteranges` Content-Type, or undefined for another type. */
export function byterangesBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/byteranges\s*;/i.test(contentType)) return undefined;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

const CR = 13;
const LF = 10;

/**
 * Parses a whole `multipart/byteranges` body (RFC 9110 §14.6). Each part's length comes from
 * its Content-Range, never from searching for the boundary, so blob bytes that happen to
 * contain the boundary cannot split a part.
 */
export function parseByteranges(body: Uint8Array, boundary: string): BytePart[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const delimiter = Buffer.from(`--${boundary}`, "latin1");
  const parts: BytePart[] = [];
  let pos = buf.indexOf(delimiter);
  if (pos < 0) throw new MultipartError("no multipart boundary in the body", true);
  for (;;) {
    pos += delimiter.length;
    if (buf[pos] === 45 && buf[pos + 1] === 45) return parts; // "--": the close delimiter
    // Transport padding, then the line end.
    while (buf[pos] === 32 || buf[pos] === 9) pos++;
    pos = skipLineEnd(buf, pos);
    if (pos < 0) throw new MultipartError("body ends inside a part header", true);
    const headerEnd = findHeaderEnd(buf, pos);
    if (headerEnd === undefined) throw new MultipartError("body ends inside a part header", true);
    const headers = buf.subarray(pos, headerEnd.at).toString("latin1");
    const rangeLine = /^content-range\s*:\s*(.*)$/im.exec(headers)?.[1]?.trim();
    const range = parseContentRange(rangeLine);
    if (!range)
      throw new MultipartError(
        `part without a valid Content-Range (${JSON.stringify(rangeLine ?? "")})`,
        false,
      );
    const dataStart = headerEnd.next;
    const dataEnd = dataStart + (range.end - range.start + 1);
    if (dataEnd > buf.length) throw new MultipartError("body ends inside a part", true);
    parts.push({ ...range, data: buf.subarray(dataStart, dataEnd) });
    pos = skipLineEnd(buf, dataEnd);
    if (pos < 0) throw new MultipartError("body ends after a part", true);
    if (pos === dataEnd) throw new MultipartError("part longer than its Content-Range", false);
    if (buf.length - pos < delimiter.length)
      throw new MultipartError("body ends after a part", true);
    if (!buf.subarray(pos, pos + delimiter.length).equals(delimiter)) {
      throw new MultipartError("part longer than its Content-Range", false);
    }
  }
}

/** Index after a CRLF or LF at pos; pos itself if there is none; -1 at the end of the buffer. */
function skipLineEnd(buf: Buffer, pos: number): number {
  if (pos >= buf.length) return -1;
  if (buf[pos] === CR && buf[pos + 1] === LF) return pos + 2;
  if (buf[pos] === CR && pos + 1 >= buf.length) return -1;
  if (buf[pos] === LF) return pos + 1;
  return pos;
}

/** End of a header block (blank line), tolerant of bare LF line ends. */
function findHeaderEnd(buf: Buffer, from: number): { at: number; next: number } | undefined {
  // A part may have no headers at all (then the blank line comes first).
  if (buf[from] === CR && buf[from + 1] === LF) return { at: from, next: from + 2 };
  if (buf[from] === LF) return { at: from, next: from + 1 };
  for (let i = from; i < buf.length; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i + 1] === LF) return { at: i, next: i + 2 };
    if (buf[i + 1] === CR && buf[i + 2] === LF) return { at: i, next: i + 3 };
  }
  return undefined;
}
