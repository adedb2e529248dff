import { BufferRangeSource, LayerReader } from "@seekable/format";
import { ImageFS, type MergedNode } from "@seekable/reader";
import {
  elfNeeding,
  pycImporting,
  pycSelfReferencing,
  pycWideFromList,
} from "@seekable/test-kit/hostile-files.js";
import { esgzBlob, type TarItem } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ChunkPool } from "../src/chunks.js";
import { Content } from "../src/content.js";
import { Budget, GUESS_LIMITS } from "../src/guess/budget.js";
import { ContentFiles } from "../src/guess/files.js";
import { Guessing } from "../src/guess/guessing.js";
import { JsRequires } from "../src/guess/js-requires.js";
import { LoaderPrefetch } from "../src/guess/loader-prefetch.js";
import { PythonImports } from "../src/guess/python-imports.js";
import { resolvePath } from "../src/guess/resolve-path.js";

/** The guessers' `guess` step, called directly: what one examination of `data` costs. */
class PyProbe extends PythonImports {
  probe(m: MergedNode, data: Uint8Array, b: Budget) {
    return this.guess(m, data, b);
  }
}
class JsProbe extends JsRequires {
  probe(m: MergedNode, data: Uint8Array, b: Budget) {
    return this.guess(m, data, b);
  }
}

/** The kernel's resolution, written plainly (recursive, copying arrays): the reference. */
function naive(fs: ImageFS, path: string): MergedNode | undefined {
  let hops = 0;
  const walk = (start: MergedNode[], parts: string[]): MergedNode[] | undefined => {
    let stack = start;
    for (const c of parts) {
      if (c === "" || c === ".") continue;
      if (c === "..") {
        stack = stack.length > 1 ? stack.slice(0, -1) : stack;
        continue;
      }
      const next = stack[stack.length - 1].children?.get(c);
      if (!next) return undefined;
      if (next.node.type === "symlink") {
        if (++hops > 40) return undefined;
        const t = next.node.linkName;
        const r = walk(t.startsWith("/") ? [fs.root] : stack, t.split("/"));
        if (!r) return undefined;
        stack = r;
        continue;
      }
      stack = [...stack, next];
    }
    return stack;
  };
  const r = walk([fs.root], path.split("/"));
  return r?.[r.length - 1];
}

async function imageOf(items: TarItem[]): Promise<{ fs: ImageFS; content: Content }> {
  const reader = await LayerReader.open(new BufferRangeSource(await esgzBlob(items)));
  const pool = new ChunkPool(64 << 20, undefined, { enabled: false });
  return { fs: new ImageFS([reader]), content: new Content([{ view: reader, reader }], pool) };
}

describe("resolvePath", () => {
  const names = ["a", "b", "c"];
  const component = fc.constantFrom("a", "b", "c", "..", ".", "");
  const target = fc
    .array(component, { maxLength: 6 })
    .chain((parts) => fc.boolean().map((abs) => (abs ? "/" : "") + parts.join("/")));

  it("answers as the kernel would, for any tree of symlinks, and within its budget", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(target, { minLength: 3, maxLength: 3 }),
        fc.array(fc.array(component, { maxLength: 8 }), { minLength: 1, maxLength: 10 }),
        async (targets, paths) => {
          // d/{a,b,c} are symlinks; a/, b/, c/ directories holding files and links again.
          const items: TarItem[] = [{ name: "d/" }];
          names.forEach((n, i) => {
            items.push({ name: `d/${n}`, type: "symlink", linkname: targets[i] });
            items.push({ name: `${n}/` }, { name: `${n}/f`, body: n });
            items.push({ name: `${n}/d`, type: "symlink", linkname: "../d" });
          });
          const { fs } = await imageOf(items);
          for (const p of paths) {
            const path = ["d", ...p].join("/");
            const b = new Budget();
            expect(resolvePath(fs, path, b)?.node.path).toBe(naive(fs, path)?.node.path);
            expect(b.used()).toBeLessThanOrEqual(GUESS_LIMITS.steps + 1);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("is linear: a symlink storm costs at most its budget, a long path is refused at once", async () => {
    const { fs } = await imageOf([
      { name: "l", type: "symlink", linkname: "./".repeat(2000) },
      { name: "loop", type: "symlink", linkname: "loop/./." },
    ]);
    const storm = new Budget(10_000);
    expect(resolvePath(fs, `/l/l/l/l/l/l/l/l/x`, storm)).toBeUndefined();
    expect(storm.used(10_000)).toBeLessThanOrEqual(10_001);
    const loop = new Budget();
    expect(resolvePath(fs, "/loop/x", loop)).toBeUndefined(); // 40 hops
    expect(loop.used()).toBeLessThan(200);
    const long = new Budget();
    expect(resolvePath(fs, "./".repeat(400_000), long)).toBeUndefined();
    expect(long.used()).toBe(0);
  });
});

describe("the guessers on hostile and random bytes", () => {
  const PY = "usr/lib/python3.11";
  let py: PyProbe;
  let js: JsProbe;
  let pycNode: MergedNode;
  let jsNode: MergedNode;
  let pkgNode: MergedNode;

  beforeAll(async () => {
    const items: TarItem[] = [
      { name: `${PY}/` },
      { name: `${PY}/__init__.py`, body: "" },
      { name: `${PY}/m/` },
      { name: `${PY}/m/__init__.py`, body: "" },
      { name: `${PY}/__pycache__/` },
      { name: `${PY}/__pycache__/x.cpython-311.pyc`, body: "x" },
      { name: "app/" },
      { name: "app/main.js", body: "x" },
      { name: "app/node_modules/" },
      { name: "app/node_modules/pkg/" },
      { name: "app/node_modules/pkg/package.json", body: "{}" },
      { name: "l", type: "symlink", linkname: "./".repeat(2000) },
    ];
    for (let i = 0; i < 200; i++) items.push({ name: `${PY}/m/n${i}.py`, body: "" });
    const { fs, content } = await imageOf(items);
    const guessing = new Guessing();
    py = new PyProbe(fs, new ContentFiles(() => content), guessing);
    js = new JsProbe(fs, new ContentFiles(() => content), guessing);
    const at = (p: string) => fs.lookup(p) as MergedNode;
    pycNode = at(`${PY}/__pycache__/x.cpython-311.pyc`);
    jsNode = at("app/main.js");
    pkgNode = at("app/node_modules/pkg/package.json");
  });

  /** One examination: within the step budget, at most 32 files, well under a second. */
  function bounded(found: MergedNode[], b: Budget, t0: number): void {
    expect(found.length).toBeLessThanOrEqual(GUESS_LIMITS.files);
    expect(b.used()).toBeLessThanOrEqual(GUESS_LIMITS.steps + 1);
    expect(performance.now() - t0).toBeLessThan(1000);
  }

  it.each([
    ["self-referencing code", pycSelfReferencing()],
    ["512 imports of a 150k-name from-list", pycWideFromList(512, 150_000)],
    ["20,000 dots", pycImporting(".".repeat(20_000))],
    ["10,000 parts", pycImporting(Array(10_000).fill("m").join("."))],
  ])(".pyc with %s", (_, data) => {
    const b = new Budget();
    const t0 = performance.now();
    bounded(py.probe(pycNode, data, b), b, t0);
  });

  it("`from m import n0 … n199`, every one a module: 32 files at most", () => {
    const found = py.probe(pycNode, pycWideFromList(1, 200), new Budget());
    expect(found.length).toBe(GUESS_LIMITS.files);
    expect(found.map((f) => f.node.path)).toContain(`${PY}/m/n0.py`);
  });

  it("random bytes after a valid .pyc header", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (tail) => {
        const data = Buffer.concat([Buffer.from([0xa7, 0x0d, 0x0d, 0x0a]), Buffer.alloc(12), tail]);
        const b = new Budget();
        const t0 = performance.now();
        bounded(py.probe(pycNode, data, b), b, t0);
      }),
      { numRuns: 300 },
    );
  });

  it("random and adversarial JavaScript and package.json text", () => {
    const spec = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constant(`./${"./".repeat(140)}x`),
      fc.constant(`${"../".repeat(90)}l/x`),
      fc.constant("pkg"),
    );
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 300 }), (specs) => {
        const src = Buffer.from(specs.map((s) => `require(${JSON.stringify(s)});`).join("\n"));
        const b = new Budget();
        const t0 = performance.now();
        bounded(js.probe(jsNode, src, b), b, t0);
        const pkg = Buffer.from(JSON.stringify({ main: specs.join("/") }));
        const b2 = new Budget();
        bounded(js.probe(pkgNode, pkg, b2), b2, performance.now());
      }),
      { numRuns: 100 },
    );
  });

  it("the loader on a RUNPATH symlink storm settles at once, its bytes released", async () => {
    const elf = elfNeeding({
      needed: Array.from({ length: 256 }, (_, i) => `lib${i}.so`),
      runpath: Array(1365).fill("/l").join(":"),
    });
    const { fs, content } = await imageOf([
      { name: "l", type: "symlink", linkname: "./".repeat(2000) },
      { name: "usr/" },
      { name: "usr/bin/" },
      { name: "usr/bin/evil", body: elf, mode: 0o755 },
    ]);
    const guessing = new Guessing();
    const loader = new LoaderPrefetch(fs, new ContentFiles(() => content), guessing);
    const m = fs.lookup("usr/bin/evil") as MergedNode;
    const t0 = performance.now();
    loader.firstRead(m);
    await loader.settled();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(guessing.bytesInFlight).toBe(0);
  });
});
