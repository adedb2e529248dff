import { BufferRangeSource, LayerReader } from "@seekable/format";
import { ImageFS } from "@seekable/reader";
import { esgzBlob, pseudoRandom, type TarItem } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChunkPool } from "../src/chunks.js";
import { Content } from "../src/content.js";
import { ContentFiles } from "../src/guess/files.js";
import { jsSpecifiers } from "../src/guess/js.js";
import { JsRequires } from "../src/guess/js-requires.js";

describe("jsSpecifiers", () => {
  it("finds require, import, dynamic import and re-exports, once each", () => {
    const src = `
      const a = require("./a"); const b = require('pkg/sub');
      import c from "c-pkg"; import "./side-effect.js";
      export { d } from '../d'; const e = await import("./e.mjs");
      const again = require("./a"); const s = "require is just a word";
    `;
    expect(jsSpecifiers(src)).toEqual([
      "./a",
      "pkg/sub",
      "c-pkg",
      "./side-effect.js",
      "../d",
      "./e.mjs",
    ]);
  });

  it("never throws and returns bounded lists on any text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2000 }), (s) => {
        const out = jsSpecifiers(`${s} require("x") ${s}`);
        expect(out.length).toBeLessThanOrEqual(256);
        expect(out).toContain("x");
      }),
      { numRuns: 200 },
    );
  });
});

const js = (s: string) => `${s}\n// ${"x".repeat(200)}\n`;

describe("JsRequires", () => {
  it("fetches what a module requires, resolved as Node resolves it, and what those require", async () => {
    const items: TarItem[] = [
      { name: "app/" },
      {
        name: "app/main.js",
        body: js(`require("web"); require("./util"); require("fs"); require("node:path");`),
      },
      { name: "app/util/" },
      { name: "app/util/index.js", body: js(`module.exports = require("../conf.json");`) },
      { name: "app/conf.json", body: `{"port": 1}` },
      { name: "app/unused.js", body: js("module.exports = 1;") },
      { name: "app/node_modules/" },
      { name: "app/node_modules/web/" },
      { name: "app/node_modules/web/package.json", body: `{"name":"web","main":"lib/web"}` },
      { name: "app/node_modules/web/lib/" },
      {
        name: "app/node_modules/web/lib/web.js",
        body: js(`require("./router"); require("@s/dep");`),
      },
      { name: "app/node_modules/web/lib/router.js", body: js("module.exports = {};") },
      { name: "app/node_modules/web/index.js", body: js("wrong guess, never the entry") },
      { name: "app/node_modules/@s/" },
      { name: "app/node_modules/@s/dep/" },
      {
        name: "app/node_modules/@s/dep/package.json",
        body: `{"exports":{".":{"import":"./esm.mjs","require":"./cjs.js"}}}`,
      },
      { name: "app/node_modules/@s/dep/cjs.js", body: js("module.exports = 2;") },
      { name: "app/node_modules/@s/dep/esm.mjs", body: js("export default 2;") },
      { name: "app/big.bin", body: pseudoRandom(300_000, 3) },
    ];
    const blob = await esgzBlob(items);
    const reader = await LayerReader.open(new BufferRangeSource(blob));
    const fs = new ImageFS([reader]);
    const pool = new ChunkPool(64 << 20, undefined, { enabled: false, spareRatio: 100 });
    const content = new Content([{ view: reader, reader }], pool);
    const requires = new JsRequires(fs, new ContentFiles(() => content));
    const fetched = (p: string) => {
      const m = fs.lookup(p);
      if (!m) throw new Error(`${p} is not in the image`);
      return pool.has(content.items(m, 0, 1)?.[0]?.key ?? "");
    };
    const main = fs.lookup("app/main.js");
    if (!main) throw new Error("no main");
    await content.read(main, Buffer.alloc(16), 16, 0);
    requires.firstRead(main);
    await requires.settled();
    for (const p of [
      "app/util/index.js",
      "app/conf.json",
      "app/node_modules/web/package.json",
      "app/node_modules/web/lib/web.js", // main, read from the fetched package.json
      "app/node_modules/web/lib/router.js",
      "app/node_modules/@s/dep/package.json",
      "app/node_modules/@s/dep/cjs.js", // exports "." require
    ])
      expect(fetched(p), p).toBe(true);
    for (const p of ["app/unused.js", "app/node_modules/@s/dep/esm.mjs", "app/big.bin"])
      expect(fetched(p), p).toBe(false);
  });
});
