// Files crafted to make the guessers (what a start reads next) work hard: ELF dynamic
// sections, compiled Python modules (marshal, CPython 3.11) and package.json files, built
// byte by byte as an attacker would write them.

/** A little-endian ELF64 shared object for x86-64 with a dynamic section and its strings. */
export function elfNeeding(opts: { needed: string[]; runpath?: string; interp?: string }): Buffer {
  const strings: Buffer[] = [Buffer.from([0])];
  let strSize = 1;
  const str = (s: string) => {
    const at = strSize;
    const b = Buffer.from(`${s}\0`, "latin1");
    strings.push(b);
    strSize += b.length;
    return at;
  };
  const dyn: [number, number][] = opts.needed.map((n) => [1, str(n)]); // DT_NEEDED
  if (opts.runpath !== undefined) dyn.push([29, str(opts.runpath)]); // DT_RUNPATH
  const phnum = opts.interp ? 3 : 2;
  const interpAt = 64 + 56 * phnum;
  const interp = opts.interp ? Buffer.from(`${opts.interp}\0`, "latin1") : Buffer.alloc(0);
  const dynAt = Math.ceil((interpAt + interp.length) / 8) * 8;
  const dynSize = (dyn.length + 3) * 16;
  const strAt = dynAt + dynSize;
  dyn.push([5, strAt], [10, strSize], [0, 0]); // DT_STRTAB (vaddr = offset), DT_STRSZ, DT_NULL
  const size = strAt + strSize;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(3, 16); // ET_DYN
  b.writeUInt16LE(62, 18); // x86-64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(64n, 32); // e_phoff
  b.writeUInt16LE(64, 52);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(phnum, 56);
  const ph = (i: number, type: number, offset: number, filesz: number) => {
    const at = 64 + i * 56;
    b.writeUInt32LE(type, at);
    b.writeBigUInt64LE(BigInt(offset), at + 8);
    b.writeBigUInt64LE(BigInt(offset), at + 16);
    b.writeBigUInt64LE(BigInt(filesz), at + 32);
  };
  ph(0, 1, 0, size); // PT_LOAD: the whole file at vaddr 0
  ph(1, 2, dynAt, dynSize); // PT_DYNAMIC
  if (opts.interp) {
    ph(2, 3, interpAt, interp.length); // PT_INTERP
    b.set(interp, interpAt);
  }
  dyn.forEach(([tag, val], i) => {
    b.writeBigInt64LE(BigInt(tag), dynAt + i * 16);
    b.writeBigUInt64LE(BigInt(val), dynAt + i * 16 + 8);
  });
  Buffer.concat(strings).copy(b, strAt);
  return b;
}

/** marshal's pieces (Python/marshal.c), as CPython 3.11 writes them. */
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
};
const bytesObj = (b: Buffer) => Buffer.concat([Buffer.from("s"), int32(b.length), b]);
const shortAscii = (s: string) =>
  Buffer.concat([Buffer.from("z"), Buffer.from([s.length]), Buffer.from(s, "latin1")]);
const ascii = (s: string) => Buffer.concat([Buffer.from("a"), int32(s.length), Buffer.from(s)]);
const tuple = (items: Buffer[]) => Buffer.concat([Buffer.from("("), int32(items.length), ...items]);
const NONE = Buffer.from("N");
const int = (n: number) => Buffer.concat([Buffer.from("i"), int32(n)]);
const ref = (i: number) => Buffer.concat([Buffer.from("r"), int32(i)]);
const LOAD_CONST = 100;
const IMPORT_NAME = 108;
const POP_TOP = 1;

/** A 3.11 code object (flagged as ref 0 when `asRef`) with the given code, consts and names. */
function code(bytecode: Buffer, consts: Buffer, names: Buffer, asRef = false): Buffer {
  return Buffer.concat([
    Buffer.from([asRef ? 0xe3 : 0x63]), // 'c', FLAG_REF
    int32(0), // argcount
    int32(0), // posonlyargcount
    int32(0), // kwonlyargcount
    int32(0), // stacksize
    int32(0), // flags (module level)
    bytesObj(bytecode),
    consts,
    names,
    NONE, // localsplusnames
    NONE, // localspluskinds
    NONE, // filename
    NONE, // name
    NONE, // qualname
    int32(1), // firstlineno
    NONE, // linetable
    NONE, // exceptiontable
  ]);
}

/** A .pyc of CPython 3.11 (magic 3495) holding `body`. */
const pyc = (body: Buffer) =>
  Buffer.concat([Buffer.from([0xa7, 0x0d, 0x0d, 0x0a]), Buffer.alloc(12), body]);

/** A module whose code lists itself three times among its constants (marshal back-refs). */
export function pycSelfReferencing(): Buffer {
  return pyc(code(Buffer.from([0, 0]), tuple([ref(0), ref(0), ref(0)]), tuple([]), true));
}

/** `from m import (n0 … n{names-1})`, `imports` times over, one shared from-list. */
export function pycWideFromList(imports: number, names: number): Buffer {
  const fromlist = tuple(Array.from({ length: names }, (_, i) => shortAscii(`n${i}`)));
  const one = Buffer.from([LOAD_CONST, 0, LOAD_CONST, 1, IMPORT_NAME, 0, POP_TOP, 0]);
  const bytecode = Buffer.concat(Array.from({ length: imports }, () => one));
  return pyc(code(bytecode, tuple([int(0), fromlist]), tuple([shortAscii("m")])));
}

/** `import <name>` for one module name (20,000 dots, say). */
export function pycImporting(name: string): Buffer {
  const bytecode = Buffer.from([LOAD_CONST, 0, LOAD_CONST, 1, IMPORT_NAME, 0, POP_TOP, 0]);
  return pyc(code(bytecode, tuple([int(0), NONE]), tuple([ascii(name)])));
}
