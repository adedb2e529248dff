/**
 * The imports a compiled Python module (.pyc) runs when it is imported: its marshalled code
 * objects are read (module level and class bodies; function bodies run later, if ever) and
 * each IMPORT_NAME instruction gives the module name, the relative level and the names
 * imported from it (the two LOAD_CONSTs before it). CPython 3.8 to 3.12 (their bytecode has
 * IMPORT_NAME 108, LOAD_CONST 100, EXTENDED_ARG 144); any other version gives nothing.
 * The bytes are hostile: every length is checked, depth and object count are bounded, each
 * code object is walked once however often marshal's back-references name it (a module may
 * list itself among its constants), from-lists are cut at MAX_FROM names, and anything odd
 * ends the scan with what was found so far: linear in the file's size.
 */

export interface PycImport {
  /** The module name as written, "" for `from . import x`. */
  name: string;
  /** 0 absolute, 1 for `.`, 2 for `..`… */
  level: number;
  /** The names of `from NAME import a, b` (submodules, perhaps). */
  fromlist: string[];
}

interface Code {
  flags: number;
  code: Uint8Array;
  consts: unknown[];
  names: unknown[];
}

const LOAD_CONST = 100;
const IMPORT_NAME = 108;
const EXTENDED_ARG = 144;
const CO_NEWLOCALS = 0x2; // functions; module and class bodies lack it
const MAX_OBJECTS = 200_000;
const MAX_DEPTH = 100;
const MAX_IMPORTS = 512;
/** Names kept of one `from M import a, b, …` (a start imports far fewer from one module). */
const MAX_FROM = 64;

class Stop extends Error {}

/** The interpreter version a .pyc's magic number names ([3, 11]), or undefined. */
export function pycVersion(b: Uint8Array): [number, number] | undefined {
  if (b.length < 16 || b[2] !== 0x0d || b[3] !== 0x0a) return undefined;
  const magic = b[0] | (b[1] << 8);
  // Python/importlib/_bootstrap_external.py: the first magic of each version.
  const firsts: [number, number, number][] = [
    [3413, 3, 8],
    [3425, 3, 9],
    [3439, 3, 10],
    [3495, 3, 11],
    [3531, 3, 12],
    [3571, 3, 13],
  ];
  let v: [number, number] | undefined;
  for (const [m, major, minor] of firsts) if (magic >= m) v = [major, minor];
  return v;
}

/** The imports the module's top level and class bodies run. */
export function pycImports(b: Uint8Array): PycImport[] {
  const v = pycVersion(b);
  if (v?.[0] !== 3 || v[1] < 8 || v[1] > 12) return [];
  const reader = new Marshal(b, 16, v[1]);
  let top: unknown;
  try {
    top = reader.object(0);
  } catch {
    return [];
  }
  const out: PycImport[] = [];
  const walked = new Set<Code>();
  const walk = (c: unknown, depth: number) => {
    if (!isCode(c) || depth > MAX_DEPTH || out.length >= MAX_IMPORTS || walked.has(c)) return;
    walked.add(c);
    if (depth > 0 && c.flags & CO_NEWLOCALS) return;
    importsOf(c, out);
    for (const k of c.consts) walk(k, depth + 1);
  };
  walk(top, 0);
  return out;
}

const isCode = (x: unknown): x is Code =>
  typeof x === "object" && x !== null && (x as Code).code instanceof Uint8Array;

function importsOf(c: Code, out: PycImport[]): void {
  const code = c.code;
  const consts: unknown[] = [];
  let ext = 0;
  for (let i = 0; i + 1 < code.length && out.length < MAX_IMPORTS; i += 2) {
    const op = code[i];
    const arg = code[i + 1] | ext;
    ext = op === EXTENDED_ARG ? arg << 8 : 0;
    if (op === LOAD_CONST) consts.push(c.consts[arg]);
    else if (op === IMPORT_NAME) {
      const name = c.names[arg];
      const [level, fromlist] = consts.slice(-2);
      if (typeof name === "string" && typeof level === "number" && level >= 0 && level < 64) {
        const names: string[] = [];
        if (Array.isArray(fromlist)) {
          for (const f of fromlist) {
            if (names.length >= MAX_FROM) break;
            if (typeof f === "string" && f !== "*") names.push(f);
          }
        }
        out.push({ name, level, fromlist: names });
      }
    } else if (op !== 0 && op !== EXTENDED_ARG) consts.length = 0; // 0: CACHE entries (3.11+)
    if (consts.length > 2) consts.shift();
  }
}

/** CPython's marshal format, just as far as code objects need (Python/marshal.c). */
class Marshal {
  private readonly refs: unknown[] = [];
  private count = 0;

  constructor(
    private readonly b: Uint8Array,
    private at: number,
    private readonly minor: number,
  ) {}

  private byte(): number {
    if (this.at >= this.b.length) throw new Stop();
    return this.b[this.at++];
  }

  private int32(): number {
    if (this.at + 4 > this.b.length) throw new Stop();
    const v =
      this.b[this.at] |
      (this.b[this.at + 1] << 8) |
      (this.b[this.at + 2] << 16) |
      (this.b[this.at + 3] << 24);
    this.at += 4;
    return v;
  }

  private bytes(n: number): Uint8Array {
    if (n < 0 || this.at + n > this.b.length) throw new Stop();
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  private text(n: number): string {
    return Buffer.from(this.bytes(n)).toString("latin1");
  }

  object(depth: number): unknown {
    if (depth > MAX_DEPTH || ++this.count > MAX_OBJECTS) throw new Stop();
    const raw = this.byte();
    const type = String.fromCharCode(raw & 0x7f);
    const slot = raw & 0x80 ? this.refs.push(undefined) - 1 : -1;
    const keep = <T>(v: T): T => {
      if (slot >= 0) this.refs[slot] = v;
      return v;
    };
    switch (type) {
      case "0": // NULL (ends a dict)
      case "N":
      case "S":
      case ".":
        return keep(null);
      case "F":
        return keep(false);
      case "T":
        return keep(true);
      case "i":
        return keep(this.int32());
      case "l": {
        const n = Math.abs(this.int32());
        this.bytes(n * 2);
        return keep(null);
      }
      case "g":
        this.bytes(8);
        return keep(null);
      case "y":
        this.bytes(16);
        return keep(null);
      case "f":
      case "x":
        this.bytes(this.byte());
        return keep(null);
      case "s":
        return keep(this.bytes(this.int32()));
      case "t":
      case "a":
      case "A":
      case "u":
        return keep(this.text(this.int32()));
      case "z":
      case "Z":
        return keep(this.text(this.byte()));
      case "(":
      case "[":
      case "<":
      case ">":
        return this.sequence(this.int32(), depth, keep);
      case ")":
        return this.sequence(this.byte(), depth, keep);
      case "{": {
        const d = keep(null);
        for (let k = 0; k < MAX_OBJECTS; k++) {
          if (this.b[this.at] === 0x30) {
            this.at++;
            return d;
          }
          this.object(depth + 1);
          this.object(depth + 1);
        }
        throw new Stop();
      }
      case "r": {
        const i = this.int32();
        if (i < 0 || i >= this.refs.length) throw new Stop();
        return this.refs[i];
      }
      case "c":
        return this.code(depth, keep);
      default:
        throw new Stop();
    }
  }

  private sequence(n: number, depth: number, keep: <T>(v: T) => T): unknown[] {
    if (n < 0 || n > this.b.length) throw new Stop();
    const out = keep([] as unknown[]);
    for (let k = 0; k < n; k++) out.push(this.object(depth + 1));
    return out;
  }

  private code(depth: number, keep: <T>(v: T) => T): Code {
    const c = keep({ flags: 0, code: new Uint8Array(0), consts: [], names: [] } as Code);
    // argcount, posonlyargcount, kwonlyargcount, [nlocals before 3.11], stacksize, flags
    const ints = this.minor >= 11 ? 5 : 6;
    for (let k = 0; k < ints - 1; k++) this.int32();
    c.flags = this.int32();
    const code = this.object(depth + 1);
    c.code = code instanceof Uint8Array ? code : new Uint8Array(0);
    const consts = this.object(depth + 1);
    c.consts = Array.isArray(consts) ? consts : [];
    const names = this.object(depth + 1);
    c.names = Array.isArray(names) ? names : [];
    if (this.minor >= 11) {
      // localsplusnames, localspluskinds, filename, name, qualname, firstlineno,
      // linetable, exceptiontable
      for (let k = 0; k < 5; k++) this.object(depth + 1);
      this.int32();
      this.object(depth + 1);
      this.object(depth + 1);
    } else {
      // varnames, freevars, cellvars, filename, name, firstlineno, lnotab
      for (let k = 0; k < 5; k++) this.object(depth + 1);
      this.int32();
      this.object(depth + 1);
    }
    return c;
  }
}
