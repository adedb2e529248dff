import type { ImageFS, MergedNode } from "@seekable/reader";
import { resolved } from "./attr.js";
import type { ChunkItem } from "./chunks.js";
import type { Content } from "./content.js";
import { pycImports } from "./pyc.js";
import { resolvePath } from "./resolve-path.js";

export interface PythonImportsOptions {
  /** Modules guessed per compiled module at most. */
  maxPerModule?: number;
  /** How far guesses are followed before Python reads them (guesses of guesses). */
  depth?: number;
}

/** `DIR/__pycache__/MOD.TAG[.opt-N].pyc` */
const PYC = /^(.*)\/__pycache__\/([^/]+)\.([a-z]+-(\d)(\d+))(?:\.opt-\d)?\.pyc$/;

/**
 * Python 3.11+ has these frozen into the interpreter: their files are in the image, but a
 * start never reads them (Python/frozen.c).
 */
const FROZEN = new Set([
  "abc",
  "codecs",
  "io",
  "_collections_abc",
  "_sitebuiltins",
  "genericpath",
  "ntpath",
  "posixpath",
  "os",
  "os.path",
  "site",
  "stat",
  "importlib._bootstrap",
  "importlib._bootstrap_external",
  "importlib.util",
  "importlib.machinery",
  "runpy",
  "zipimport",
]);

/**
 * The modules a Python program imports next, fetched while it runs the one it just read.
 * When a compiled module (.pyc) is first read, the names it mentions that are modules in
 * the image — beside it in its package, or in the interpreter's import roots (the standard
 * library, lib-dynload, dist-packages) — are fetched as a guess within the pool's neighbour
 * budget (their bytes count as unused until read), then examined in turn, a few levels
 * deep. A module an import chain needs is then at hand instead of a round trip away.
 */
export class PythonImports {
  private readonly examined = new WeakSet<object>();
  private readonly running = new Set<Promise<void>>();
  private readonly maxPerModule: number;
  private readonly depth: number;

  constructor(
    readonly fs: ImageFS,
    private readonly contentOf: (m: MergedNode) => Content | undefined,
    opts: PythonImportsOptions = {},
  ) {
    this.maxPerModule = opts.maxPerModule ?? 32;
    this.depth = opts.depth ?? 3;
  }

  /** A file's first read (offset 0). */
  firstRead(m: MergedNode): void {
    this.consider(m, this.depth);
  }

  private consider(m: MergedNode, depth: number): void {
    const n = resolved(m.node);
    if (depth <= 0 || n.type !== "reg" || this.examined.has(n)) return;
    if (!n.path.endsWith(".pyc") || n.size > 4 << 20) return;
    const content = this.contentOf(m);
    if (!content) return;
    this.examined.add(n);
    const p: Promise<void> = this.examine(m, content, depth)
      .catch(() => {})
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Resolves when every examination started so far, and those it started, are done. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private async examine(m: MergedNode, content: Content, depth: number): Promise<void> {
    const match = PYC.exec(m.node.path);
    if (!match) return;
    const [, dir, , tag, major, minor] = match;
    const data = await content.bytes(m, 0, resolved(m.node).size);
    if (!data) return;
    const version = `${major}.${minor}`;
    const frozen = Number(major) === 3 && Number(minor) >= 11 ? FROZEN : new Set<string>();
    const roots = this.roots(dir, version);
    const found: MergedNode[] = [];
    const add = (files: MergedNode[]) => {
      for (const f of files) {
        if (found.length >= this.maxPerModule) return;
        if (f !== m && !this.examined.has(resolved(f.node)) && !found.includes(f)) found.push(f);
      }
    };
    for (const imp of pycImports(data)) {
      if (imp.level === 0) {
        if (frozen.has(imp.name)) continue;
        add(this.module(imp.name, roots, tag));
        for (const f of imp.fromlist) add(this.module(`${imp.name}.${f}`, roots, tag, true));
        continue;
      }
      // Relative: from the importing module's package, `level - 1` packages up.
      const up = dir.split("/");
      up.length = Math.max(0, up.length - (imp.level - 1));
      const base = [up.join("/")];
      if (imp.name) add(this.module(imp.name, base, tag));
      for (const f of imp.fromlist) {
        add(this.module(imp.name ? `${imp.name}.${f}` : f, base, tag, true));
      }
    }
    if (found.length === 0) return;
    const byContent = new Map<Content, ChunkItem[]>();
    for (const f of found) {
      const c = this.contentOf(f);
      const its = c?.items(f, 0, resolved(f.node).size);
      if (!c || !its) continue;
      byContent.set(c, [...(byContent.get(c) ?? []), ...its]);
    }
    const done = [...byContent].map(([c, its]) => c.pool.speculate(its).done);
    await Promise.all(done);
    // What came is examined in its turn: the chain of imports is fetched ahead.
    for (const f of found) this.consider(f, depth - 1);
  }

  /** The import roots: the one holding `dir`, and the interpreter's own. */
  private roots(dir: string, version: string): string[] {
    const out: string[] = [];
    const parts = dir.split("/");
    for (let i = parts.length; i > 0; i--) {
      const base = parts[i - 1];
      if (/^python\d\.\d+$/.test(base) || base === "site-packages" || base === "dist-packages") {
        out.push(parts.slice(0, i).join("/"));
        break;
      }
    }
    for (const r of [
      `usr/lib/python${version}`,
      `usr/local/lib/python${version}`,
      `usr/lib/python${version}/lib-dynload`,
      `usr/local/lib/python${version}/lib-dynload`,
      "usr/lib/python3/dist-packages",
      `usr/local/lib/python${version}/dist-packages`,
      `usr/local/lib/python${version}/site-packages`,
    ]) {
      if (!out.includes(r) && this.resolve(r)?.children) out.push(r);
    }
    return out;
  }

  /**
   * The files Python reads to import module `name` from the first of `bases` that has it:
   * each parent package's __init__, then the module — compiled in __pycache__, else its
   * source, else an extension module. `parentsKnown`: the parents are imported already
   * (`from a import b`), only the module itself counts.
   */
  private module(name: string, bases: string[], tag: string, parentsKnown = false): MergedNode[] {
    const parts = name.split(".");
    for (const base of bases) {
      const out: MergedNode[] = [];
      let at = base;
      let ok = true;
      for (let i = 0; i < parts.length - 1; i++) {
        at = `${at}/${parts[i]}`;
        const init = this.file(at, "__init__", tag);
        if (!init) {
          ok = false;
          break;
        }
        if (!parentsKnown) out.push(init);
      }
      if (!ok) continue;
      const last = parts[parts.length - 1];
      const f = this.file(at, last, tag) ?? this.file(`${at}/${last}`, "__init__", tag);
      if (f) return [...out, f];
      const d = this.resolve(at)?.children;
      if (d && at.endsWith("lib-dynload")) {
        for (const [child, node] of d) {
          if (child.startsWith(`${last}.${tag}-`) && child.endsWith(".so")) return [...out, node];
        }
      }
    }
    return [];
  }

  /** `dir`'s module `mod`: its compiled form, else its source. */
  private file(dir: string, mod: string, tag: string): MergedNode | undefined {
    for (const p of [`${dir}/__pycache__/${mod}.${tag}.pyc`, `${dir}/${mod}.py`]) {
      const f = this.resolve(p);
      if (f && resolved(f.node).type === "reg") return f;
    }
    return undefined;
  }

  private resolve(path: string): MergedNode | undefined {
    return resolvePath(this.fs, path);
  }
}
