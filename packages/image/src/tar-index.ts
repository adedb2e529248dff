import { open } from "node:fs/promises";
import { FormatError } from "@seekable/format";

/** Where a regular file's bytes sit inside a tar file. */
export interface TarMember {
  offset: number;
  size: number;
}

/**
 * Lists the regular files of an uncompressed tar with their byte offsets, reading only the
 * headers (GNU long names and PAX paths honoured). Names lose a leading "./".
 */
export async function indexTar(path: string): Promise<Map<string, TarMember>> {
  const fh = await open(path, "r");
  try {
    const { size: fileSize } = await fh.stat();
    const out = new Map<string, TarMember>();
    const block = Buffer.alloc(512);
    let pos = 0;
    let longName: string | undefined;
    while (pos + 512 <= fileSize) {
      await readExactly(fh, block, pos);
      if (block.every((b) => b === 0)) break;
      const size = parseSize(block.subarray(124, 136));
      if (!verifyChecksum(block))
        throw new FormatError(`${path}: not a tar archive (bad header at ${pos})`);
      const type = String.fromCharCode(block[156] as number);
      const dataStart = pos + 512;
      if (dataStart + size > fileSize) throw new FormatError(`${path}: truncated tar archive`);
      if (type === "L" || type === "x") {
        const data = Buffer.alloc(size);
        await readExactly(fh, data, dataStart);
        longName =
          type === "L" ? data.toString("utf8").replace(/\0.*$/s, "") : (paxPath(data) ?? longName);
      } else {
        if (type === "0" || type === "\0" || type === "7") {
          let name = longName ?? headerName(block);
          name = name.replace(/^(\.\/)+/, "");
          out.set(name, { offset: dataStart, size });
        }
        longName = undefined;
      }
      pos = dataStart + Math.ceil(size / 512) * 512;
    }
    return out;
  } finally {
    await fh.close();
  }
}

async function readExactly(
  fh: import("node:fs/promises").FileHandle,
  buf: Buffer,
  pos: number,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, pos + done);
    if (bytesRead === 0) throw new FormatError("truncated tar archive");
    done += bytesRead;
  }
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString("utf8", 0, z < 0 ? b.length : z);
}

function headerName(b: Buffer): string {
  const name = cstr(b.subarray(0, 100));
  const ustar = b.toString("latin1", 257, 262) === "ustar";
  const prefix = ustar ? cstr(b.subarray(345, 500)) : "";
  return prefix ? `${prefix}/${name}` : name;
}

function parseSize(f: Buffer): number {
  if ((f[0] as number) & 0x80) {
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + (f[i] as number);
    return n;
  }
  const s = f
    .toString("latin1")
    .replace(/[\0 ].*$/s, "")
    .trim();
  return s === "" ? 0 : Number.parseInt(s, 8);
}

function verifyChecksum(b: Buffer): boolean {
  const want = Number.parseInt(
    b
      .toString("latin1", 148, 156)
      .replace(/[\0 ]+/g, " ")
      .trim(),
    8,
  );
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (b[i] as number);
  return sum === want;
}

function paxPath(data: Buffer): string | undefined {
  let p = 0;
  let path: string | undefined;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number.parseInt(data.toString("latin1", p, sp), 10);
    if (!len) break;
    const rec = data.toString("utf8", sp + 1, p + len - 1);
    const eq = rec.indexOf("=");
    if (rec.slice(0, eq) === "path") path = rec.slice(eq + 1);
    p += len;
  }
  return path;
}
