/**
 * Just enough ELF to know what the dynamic loader reads next: the interpreter (PT_INTERP),
 * and from the dynamic section the libraries (DT_NEEDED) and where to look for them
 * (DT_RUNPATH, DT_RPATH). The bytes come from an image and are hostile: every offset is
 * bounds-checked, every loop bounded, and anything odd is "not ELF" (no prefetch), never
 * an error.
 */

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const MAX_PHNUM = 512;
const MAX_DYN = 4096;
const MAX_NAME = 4096;

/** A file range the parser needs next. */
export interface FileRange {
  offset: number;
  length: number;
}

export interface ElfHeader {
  is64: boolean;
  little: boolean;
  /** e_machine (62 x86-64, 183 AArch64, 3 i386…). */
  machine: number;
  interp?: string;
  /** Where the dynamic table is in the file (absent: a static executable). */
  dynamic?: FileRange;
  /** PT_LOAD segments: virtual address to file offset. */
  loads: { vaddr: number; offset: number; filesz: number }[];
}

export interface DynamicInfo {
  needed: string[];
  /** DT_RUNPATH, else DT_RPATH, split at ':'. */
  searchPath: string[];
}

const isElf = (b: Uint8Array) =>
  b.length >= 52 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;

/** The header and program headers, when `head` (the file's first bytes) holds them. */
export function parseElfHeader(head: Uint8Array): ElfHeader | undefined {
  if (!isElf(head)) return undefined;
  const cls = head[4];
  const data = head[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
  const is64 = cls === 2;
  const little = data === 1;
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const word = (at: number) =>
    is64 ? Number(v.getBigUint64(at, little)) : v.getUint32(at, little);
  if (head.length < (is64 ? 64 : 52)) return undefined;
  const machine = v.getUint16(18, little);
  const phoff = word(is64 ? 32 : 28);
  const phentsize = v.getUint16(is64 ? 54 : 42, little);
  const phnum = v.getUint16(is64 ? 56 : 44, little);
  if (phnum > MAX_PHNUM || phentsize < (is64 ? 56 : 32)) return undefined;
  if (!Number.isSafeInteger(phoff) || phoff + phnum * phentsize > head.length) return undefined;
  const out: ElfHeader = { is64, little, machine, loads: [] };
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = v.getUint32(at, little);
    const offset = word(at + (is64 ? 8 : 4));
    const vaddr = word(at + (is64 ? 16 : 8));
    const filesz = word(at + (is64 ? 32 : 16));
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(filesz)) continue;
    if (type === PT_LOAD) out.loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) out.dynamic = { offset, length: filesz };
    else if (type === PT_INTERP && filesz > 1 && filesz <= MAX_NAME) {
      if (offset + filesz > head.length) continue;
      const name = cString(head, offset, offset + filesz);
      if (name) out.interp = name;
    }
  }
  return out;
}

/** The file offset of virtual address `vaddr`, through the PT_LOAD segments. */
export function fileOffsetOf(h: ElfHeader, vaddr: number): number | undefined {
  for (const l of h.loads) {
    if (vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz) return l.offset + (vaddr - l.vaddr);
  }
  return undefined;
}

/** The dynamic table's string table range (DT_STRTAB, DT_STRSZ), from the table's bytes. */
export function stringTableOf(h: ElfHeader, dyn: Uint8Array): FileRange | undefined {
  let strtab: number | undefined;
  let strsz: number | undefined;
  for (const [tag, val] of entries(h, dyn)) {
    if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_STRSZ) strsz = val;
  }
  if (strtab === undefined || strsz === undefined || strsz <= 0) return undefined;
  const offset = fileOffsetOf(h, strtab);
  if (offset === undefined) return undefined;
  return { offset, length: Math.min(strsz, 1 << 20) };
}

/** DT_NEEDED names and the search path, given the dynamic table and its string table. */
export function dynamicInfo(h: ElfHeader, dyn: Uint8Array, strtab: Uint8Array): DynamicInfo {
  const needed: string[] = [];
  let runpath: string | undefined;
  let rpath: string | undefined;
  const str = (at: number) => (at < strtab.length ? cString(strtab, at, strtab.length) : "");
  for (const [tag, val] of entries(h, dyn)) {
    if (tag === DT_NEEDED) {
      const name = str(val);
      if (name && needed.length < 256) needed.push(name);
    } else if (tag === DT_RUNPATH) runpath = str(val);
    else if (tag === DT_RPATH) rpath = str(val);
  }
  const path = runpath ?? rpath ?? "";
  return { needed, searchPath: path.split(":").filter((p) => p !== "") };
}

function* entries(h: ElfHeader, dyn: Uint8Array): Generator<[number, number]> {
  const size = h.is64 ? 16 : 8;
  const v = new DataView(dyn.buffer, dyn.byteOffset, dyn.byteLength);
  const n = Math.min(MAX_DYN, Math.floor(dyn.length / size));
  for (let i = 0; i < n; i++) {
    const at = i * size;
    const tag = h.is64 ? Number(v.getBigInt64(at, h.little)) : v.getInt32(at, h.little);
    if (tag === 0) return; // DT_NULL
    const val = h.is64 ? Number(v.getBigUint64(at + 8, h.little)) : v.getUint32(at + 4, h.little);
    if (Number.isSafeInteger(val)) yield [tag, val];
  }
}

/** A NUL-terminated name of printable bytes, or "" (no name is better than a wrong one). */
function cString(b: Uint8Array, from: number, end: number): string {
  const stop = Math.min(end, from + MAX_NAME);
  let i = from;
  while (i < stop && b[i] !== 0) {
    if (b[i] < 0x20 || b[i] > 0x7e) return "";
    i++;
  }
  if (i === stop) return "";
  return Buffer.from(b.buffer, b.byteOffset + from, i - from).toString("latin1");
}

/** Debian's multiarch directory of an ELF machine, where its libraries live. */
export function multiarchOf(machine: number, is64: boolean): string | undefined {
  switch (machine) {
    case 62:
      return "x86_64-linux-gnu";
    case 183:
      return "aarch64-linux-gnu";
    case 3:
      return "i386-linux-gnu";
    case 40:
      return "arm-linux-gnueabihf";
    case 21:
      return is64 ? "powerpc64le-linux-gnu" : undefined;
    case 22:
      return "s390x-linux-gnu";
    case 243:
      return is64 ? "riscv64-linux-gnu" : undefined;
    default:
      return undefined;
  }
}
