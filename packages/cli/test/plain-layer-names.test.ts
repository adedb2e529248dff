// A plain (non-eStargz) tar.gz layer is read whole (reader/src/whole-layer.ts): its names are
// the tar's bytes decoded as UTF-8 once, like the TOC's, so `ls` shows `café.txt` (not
// `cafÃ©.txt`) and `cat café.txt` finds it. Served by the OCI layout server, read through a
// blob URL with the seekable CLI.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { emptyHeader, encodeHeader, padding, type TarHeader, toByteString } from "@seekable/format";
import { LayoutServer, OciLayout } from "@seekable/image";
import { run } from "@seekable/test-kit/run.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

function entry(name: string, type: TarHeader["type"], body = "", linkname = ""): Buffer {
  const h = emptyHeader(toByteString(name), type);
  const data = Buffer.from(body);
  h.mode = type === "5" ? 0o755 : 0o644;
  h.size = data.length;
  h.mtimeSec = 1_700_000_000;
  h.linkname = toByteString(linkname);
  h.uname = toByteString("josé");
  return Buffer.concat([encodeHeader(h), data, Buffer.alloc(padding(data.length))]);
}

let root: string;
let server: LayoutServer;
let blobUrl: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "seekable-plain-names-"));
  const tar = Buffer.concat([
    entry("répertoire/", "5"),
    entry("répertoire/café.txt", "0", "un café\n"),
    entry("lien-vers-café", "1", "", "répertoire/café.txt"),
    Buffer.alloc(1024),
  ]);
  const blob = gzipSync(tar);
  const digest = createHash("sha256").update(blob).digest("hex");
  mkdirSync(join(root, "blobs/sha256"), { recursive: true });
  writeFileSync(join(root, "blobs/sha256", digest), blob);
  writeFileSync(join(root, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(root, "index.json"), '{"schemaVersion":2,"manifests":[]}');
  server = new LayoutServer(await OciLayout.open(root));
  const addr = await server.listen(0, "127.0.0.1");
  blobUrl = `http://${addr}/v2/plain/blobs/sha256:${digest}`;
});

afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("a plain tar.gz with non-ASCII names", () => {
  it("lists café.txt as text, with its owner's name and its link's target", async () => {
    const r = await cli("ls", blobUrl, "--json", "--no-cache");
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout.toString("utf8")) as {
      name: string;
      userName?: string;
      linkName?: string;
    }[];
    expect(list.map((e) => e.name).sort()).toEqual([
      "lien-vers-café",
      "répertoire",
      "répertoire/café.txt",
    ]);
    const cafe = list.find((e) => e.name === "répertoire/café.txt");
    expect(cafe?.userName).toBe("josé");
    expect(list.find((e) => e.name === "lien-vers-café")?.linkName).toBe("répertoire/café.txt");
    const human = await cli("ls", blobUrl, "répertoire", "--no-cache");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.toString("utf8")).toContain("café.txt");
    expect(human.stdout.toString("utf8")).not.toContain("Ã");
  });

  it("cats café.txt, directly and through the hard link", async () => {
    const r = await cli("cat", blobUrl, "répertoire/café.txt", "lien-vers-café", "--no-cache");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString("utf8")).toBe("un café\nun café\n");
  });
});
