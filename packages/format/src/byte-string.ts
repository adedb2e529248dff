/**
 * Tar names, link names, user names, PAX values and xattrs are raw bytes, and the TOC is
 * serialized byte-exactly from them (go-json.ts). Inside the format package they travel as
 * a ByteString: a JS string holding one char per byte (latin1). The brand keeps them apart
 * from text: a ByteString becomes text only through `fromByteString` (UTF-8 decoding, the one
 * boundary to paths a user types or sees) and text becomes bytes only through `toByteString`.
 */
export type ByteString = string & { readonly __bytes: unique symbol };

/** Bytes [start, end) of a buffer as a byte string. */
export function bytesToByteString(b: Buffer, start = 0, end = b.length): ByteString {
  return b.toString("latin1", start, end) as ByteString;
}

/** The bytes a byte string holds. */
export function byteStringToBytes(s: ByteString): Buffer {
  return Buffer.from(s, "latin1");
}

/** Text (UTF-16) as its UTF-8 bytes. */
export function toByteString(s: string): ByteString {
  return Buffer.from(s, "utf8").toString("latin1") as ByteString;
}

/** A byte string decoded as UTF-8 (invalid bytes become U+FFFD). */
export function fromByteString(b: ByteString): string {
  return Buffer.from(b, "latin1").toString("utf8");
}

/** A byte string of ASCII text (literals such as "./" or "PaxHeaders.0"). */
export function asciiByteString(s: string): ByteString {
  return s as ByteString;
}
