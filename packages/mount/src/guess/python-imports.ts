import type { MergedNode } from "@seekable/reader";
import type { Budget } from "./budget.js";
import { ImportGuesser } from "./import-guesser.js";
import { pycImports } from "./pyc.js";

/** `DIR/__pycache__/MOD.TAG[.opt-N].pyc` */
const PYC = /^(.*)\/__pycache__\/([^/]+)\.([a-z]+-(\d)(\d+))(?:\.opt-\d)?\.pyc$/;

/**
 * Python 3.11+ has these frozen into the interpreter: their files are in the image, but a
 * start never reads them (Python/frozen.c).
 */
/** A dotted module name of more parts than this names nothing a start imports. */
const MAX_PARTS = 32;

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
 * When a compiled module (.pyc) is first read, its imports (module level and class bodies,
 * from its marshalled code) are found as the import system would — relative to its
 * package, then in the interpreter's roots (the standard library, lib-dynload,
 * dist-packages) — and fetched as guesses (ImportGuesser), then examined in turn.
 */
export class PythonImports extends ImportGuesser {
  protected accepts(path: string): boolean {
    return path.endsWith(".pyc");
  }

  protected guess(m: MergedNode, data: Uint8Array, budget: Budget): MergedNode[] {
    const match = PYC.exec(m.node.path);
    if (!match) return [];
    const [, dir, , tag, major, minor] = match;
    const version = `${major}.${minor}`;
    const frozen = Number(major) === 3 && Number(minor) >= 11 ? FROZEN : new Set<string>();
    const roots = this.roots(dir, version, budget);
    const found: MergedNode[] = [];
    // Each name tried is a step; the loop ends with the budget or maxPerFile files.
    const full = () => found.length >= this.maxPerFile || budget.spent;
    for (const imp of pycImports(data)) {
      if (full()) break;
      if (imp.level === 0) {
        if (frozen.has(imp.name)) continue;
        found.push(...this.module(imp.name, roots, tag, budget));
        for (const f of imp.fromlist) {
          if (full()) break;
          found.push(...this.module(`${imp.name}.${f}`, roots, tag, budget, true));
        }
        continue;
      }
      // Relative: from the importing module's package, `level - 1` packages up.
      const up = dir.split("/");
      up.length = Math.max(0, up.length - (imp.level - 1));
      const base = [up.join("/")];
      if (imp.name) found.push(...this.module(imp.name, base, tag, budget));
      for (const f of imp.fromlist) {
        if (full()) break;
        found.push(...this.module(imp.name ? `${imp.name}.${f}` : f, base, tag, budget, true));
      }
    }
    return found;
  }

  /** The import roots: the one holding `dir`, and the interpreter's own. */
  private roots(dir: string, version: string, budget: Budget): string[] {
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
      if (!out.includes(r) && this.resolve(r, budget)?.children) out.push(r);
    }
    return out;
  }

  /**
   * The files Python reads to import module `name` from the first of `bases` that has it:
   * each parent package's __init__, then the module — compiled in __pycache__, else its
   * source, else an extension module. `parentsKnown`: the parents are imported already
   * (`from a import b`), only the module itself counts.
   */
  private module(
    name: string,
    bases: string[],
    tag: string,
    budget: Budget,
    parentsKnown = false,
  ): MergedNode[] {
    const parts = name.split(".", MAX_PARTS + 1);
    if (parts.length > MAX_PARTS || parts.includes("")) return [];
    for (const base of bases) {
      if (!budget.spend()) return [];
      const out: MergedNode[] = [];
      let at = base;
      let ok = true;
      for (let i = 0; i < parts.length - 1; i++) {
        at = `${at}/${parts[i]}`;
        const init = this.file(at, "__init__", tag, budget);
        if (!init) {
          ok = false;
          break;
        }
        if (!parentsKnown) out.push(init);
      }
      if (!ok) continue;
      const last = parts[parts.length - 1];
      const f =
        this.file(at, last, tag, budget) ?? this.file(`${at}/${last}`, "__init__", tag, budget);
      if (f) return [...out, f];
      const d = this.resolve(at, budget)?.children;
      if (d && at.endsWith("lib-dynload")) {
        for (const [child, node] of d) {
          if (!budget.spend()) return [];
          if (child.startsWith(`${last}.${tag}-`) && child.endsWith(".so")) return [...out, node];
        }
      }
    }
    return [];
  }

  /** `dir`'s module `mod`: its compiled form, else its source. */
  private file(dir: string, mod: string, tag: string, budget: Budget): MergedNode | undefined {
    return (
      this.regular(`${dir}/__pycache__/${mod}.${tag}.pyc`, budget) ??
      this.regular(`${dir}/${mod}.py`, budget)
    );
  }
}
