// A TOC too big to build (issue 10, item 8): 5M tiny entries, 175 MB of JSON, in a 12 MB
// blob. The CLI must refuse it with one line naming the blob and the limit, exit 1, in
// bounded memory and time (before: 159 s, 4.7 GiB, "JavaScript heap out of memory", exit 134).

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { emptyHeader, encodeFooter, encodeHeader, padding, toByteString } from "@seekable/format";
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { describeRun, run } from "./helpers/run.js";

const ENTRIES = 5_000_000;
const entry = (i: number) => `{"name":"d/f${String(i).padStart(7, "0")}","type":"reg"}`;

let dir: string;
let cleanup: () => Promise<void>;
let blob: string;

/**
 * Writes the blob streaming (never more than one batch of entries in memory): the TOC member
 * at offset 0 (every entry is an empty file: no payload), then the footer.
 */
async function writeHugeTocBlob(path: string): Promise<void> {
  const head = '{"version":1,"entries":[';
  const tail = "]}";
  const jsonSize = head.length + ENTRIES * entry(0).length + (ENTRIES - 1) + tail.length;
  const h = emptyHeader(toByteString("stargz.index.json"), "0");
  h.size = jsonSize;
  const out = createWriteStream(path);
  const gz = createGzip({ level: 1, chunkSize: 1 << 20 });
  gz.pipe(out);
  const write = async (b: Buffer | string) => {
    if (!gz.write(b)) await once(gz, "drain");
  };
  await write(encodeHeader(h));
  await write(head);
  const BATCH = 20_000;
  for (let i = 0; i < ENTRIES; i += BATCH) {
    const parts: string[] = [];
    for (let j = i; j < Math.min(ENTRIES, i + BATCH); j++) parts.push(entry(j));
    await write((i > 0 ? "," : "") + parts.join(","));
  }
  await write(tail);
  await write(Buffer.alloc(padding(jsonSize) + 1024));
  gz.end();
  await once(out, "close");
  const fd = createWriteStream(path, { flags: "a" });
  fd.end(encodeFooter(0));
  await once(fd, "close");
}

beforeAll(async () => {
  const tmp = await makeTempDir("toc-limits");
  dir = tmp.path;
  cleanup = tmp.remove;
  blob = join(dir, "huge-toc.esgz");
  await writeHugeTocBlob(blob);
}, 300_000);

afterAll(async () => {
  await cleanup?.();
});

it("a 5M-entry TOC is one line naming the blob and the limit, exit 1, under 1 GiB", async () => {
  expect((await stat(blob)).size).toBeLessThan(16 << 20);
  const timeOut = join(dir, "time.txt");
  const r = await run(
    "/usr/bin/time",
    ["-f", "%M", "-o", timeOut, process.execPath, seekableCli(), "ls", blob],
    { timeoutMs: 90_000 },
  );
  const rssKiB = Number((await readFile(timeOut, "utf8")).trim().split("\n").pop());
  expect(r.code, describeRun(r)).toBe(1);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(blob);
  expect(lines[0]).toMatch(/entries/);
  expect(lines[0]).toMatch(/limit/);
  expect(rssKiB, `peak RSS ${rssKiB} KiB`).toBeLessThan(1 << 20);
}, 120_000);
