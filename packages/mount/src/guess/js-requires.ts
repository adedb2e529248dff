import { builtinModules } from "node:module";
import type { MergedNode } from "@seekable/reader";
import { resolved } from "../attr.js";
import type { Budget } from "./budget.js";
import { ImportGuesser } from "./import-guesser.js";
import { jsSpecifiers } from "./js.js";

const BUILTIN = new Set(builtinModules);
const EXTENSIONS = ["", ".js", ".json", ".cjs", ".mjs", ".node"];
const MAX_PACKAGE_JSON = 256 << 10;
/**
 * The modules a Node.js program requires next, fetched while it runs the one it just read.
 * When a .js/.cjs/.mjs file is first read, the specifiers it names are resolved as Node
 * does (relative files with their extensions and index files; packages through the
 * node_modules directories up the tree, their package.json `exports` or `main`, else
 * index.js; built-in modules left out) and fetched as guesses (ImportGuesser). A package
 * whose package.json is not at hand yet brings it along, with its index.js; its entry point
 * is then guessed when the package.json is read, like any file.
 */
export class JsRequires extends ImportGuesser {
  // Twice Python's depth: a package's package.json is a level of its own.
  constructor(...[fs, files, guessing, opts]: ConstructorParameters<typeof ImportGuesser>) {
    super(fs, files, guessing, { depth: 6, ...opts });
  }

  protected accepts(path: string): boolean {
    return /\.(c|m)?js$/.test(path) || path.endsWith("/package.json");
  }

  protected guess(m: MergedNode, data: Uint8Array, budget: Budget): MergedNode[] {
    const path = m.node.path;
    const dir = path.slice(0, Math.max(0, path.lastIndexOf("/")));
    const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
    if (path.endsWith("/package.json")) return this.entryOf(dir, text, budget);
    const out: MergedNode[] = [];
    for (const spec of jsSpecifiers(text)) {
      if (out.length >= this.maxPerFile || !budget.spend()) break;
      if (spec.startsWith("node:") || BUILTIN.has(spec)) continue;
      if (spec.startsWith("./") || spec.startsWith("../") || spec === "." || spec === "..") {
        out.push(...this.fileOrDir(`${dir}/${spec}`, budget));
      } else if (!spec.startsWith("/")) out.push(...this.bare(spec, dir, budget));
    }
    return out;
  }

  /** Node's LOAD_AS_FILE, then LOAD_AS_DIRECTORY. */
  private fileOrDir(p: string, budget: Budget): MergedNode[] {
    for (const ext of EXTENSIONS) {
      const f = ext === "" ? this.regularFile(p, budget) : this.regular(`${p}${ext}`, budget);
      if (f) return [f];
    }
    const d = this.resolve(p, budget);
    if (!d?.children) return [];
    return this.packageDir(p, budget);
  }

  /** A file that is not a directory (the empty extension tries the path itself). */
  private regularFile(p: string, budget: Budget): MergedNode | undefined {
    const f = this.resolve(p, budget);
    return f && !f.children ? this.regular(p, budget) : undefined;
  }

  /** LOAD_NODE_MODULES: `name[/sub]` in each node_modules from `dir` up to the root. */
  private bare(spec: string, dir: string, budget: Budget): MergedNode[] {
    const parts = spec.split("/");
    const nameLen = spec.startsWith("@") ? 2 : 1;
    const name = parts.slice(0, nameLen).join("/");
    const sub = parts.slice(nameLen).join("/");
    const up = dir.split("/");
    for (let i = up.length; i >= 0; i--) {
      if (!budget.spend()) return [];
      if (up[i - 1] === "node_modules") continue;
      const pkg = [...up.slice(0, i), "node_modules", name].filter((s) => s !== "").join("/");
      if (!this.resolve(pkg, budget)?.children) continue;
      return sub ? this.fileOrDir(`${pkg}/${sub}`, budget) : this.packageDir(pkg, budget);
    }
    return [];
  }

  /** A package directory: its entry point when its package.json is at hand, else that. */
  private packageDir(pkg: string, budget: Budget): MergedNode[] {
    const json = this.regular(`${pkg}/package.json`, budget);
    if (!json) return this.indexOf(pkg, budget);
    const size = resolved(json.node).size;
    const text = size <= MAX_PACKAGE_JSON ? this.files.bytesAtHand(json, 0, size) : undefined;
    if (text) return this.entryOf(pkg, Buffer.from(text).toString("utf8"), budget);
    // Fetched with the likeliest entry point; read, it names the real one (accepts()).
    return [json, ...this.indexOf(pkg, budget)];
  }

  private indexOf(pkg: string, budget: Budget): MergedNode[] {
    for (const f of ["index.js", "index.json", "index.cjs", "index.mjs", "index.node"]) {
      const m = this.regular(`${pkg}/${f}`, budget);
      if (m) return [m];
    }
    return [];
  }

  /** The package's entry point: `exports` "." (require, node or default), else `main`. */
  private entryOf(pkg: string, text: string, budget: Budget): MergedNode[] {
    let json: { main?: unknown; exports?: unknown };
    try {
      if (text.length > MAX_PACKAGE_JSON) throw new Error("too large to be a package's");
      json = JSON.parse(text) as typeof json;
    } catch {
      return this.indexOf(pkg, budget);
    }
    const pick = (e: unknown, depth = 0): string | undefined => {
      if (typeof e === "string") return e;
      if (!e || typeof e !== "object" || Array.isArray(e) || depth > 4) return undefined;
      const o = e as Record<string, unknown>;
      if ("." in o) return pick(o["."], depth + 1);
      for (const k of ["require", "node", "default"]) {
        const v = pick(o[k], depth + 1);
        if (v) return v;
      }
      return undefined;
    };
    const entry = pick(json.exports) ?? (typeof json.main === "string" ? json.main : undefined);
    if (entry) {
      const found = this.fileOrDirNoPackage(`${pkg}/${entry}`, budget);
      if (found.length > 0) return found;
    }
    return this.indexOf(pkg, budget);
  }

  /** LOAD_AS_FILE, then the directory's index (a `main` naming a directory). */
  private fileOrDirNoPackage(p: string, budget: Budget): MergedNode[] {
    for (const ext of EXTENSIONS) {
      const f = ext === "" ? this.regularFile(p, budget) : this.regular(`${p}${ext}`, budget);
      if (f) return [f];
    }
    return this.resolve(p, budget)?.children ? this.indexOf(p, budget) : [];
  }
}
