import { RegistryClient } from "@seekable/registry";
import { pushImage } from "@seekable/test-kit/push-image.js";
import { type RunningRegistry, startRegistry } from "@seekable/test-kit/registry.js";
import { esgzBlob } from "@seekable/test-kit/tar.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Errno } from "../src/fuse-native.js";
import { LineLog } from "../src/host.js";
import { type ImageEntry, LayerStore } from "../src/store/layer-store.js";
import { parseStorePath } from "../src/store/operations.js";

const DIGEST = `sha256:${"a".repeat(64)}`;
const REF = Buffer.from("example.com/app:v1").toString("base64");

describe("parseStorePath", () => {
  const img = { ref: {} } as ImageEntry;
  const image = (name: string) => (name === REF ? img : undefined);

  it.each([
    ["/", { kind: "root" }],
    [`/${REF}`, { kind: "image", img }],
    [`/${REF}/${DIGEST}`, { kind: "layer", img, digest: DIGEST }],
    [`/${REF}/${DIGEST}/info`, { kind: "info", img, digest: DIGEST }],
    [`/${REF}/${DIGEST}/blob`, { kind: "blob", img, digest: DIGEST }],
    [`/${REF}/${DIGEST}/diff`, { kind: "diff", img, digest: DIGEST, inner: "/" }],
    [
      `/${REF}/${DIGEST}/diff/usr/bin/x`,
      { kind: "diff", img, digest: DIGEST, inner: "/usr/bin/x" },
    ],
  ])("%s", (path, want) => {
    expect(parseStorePath(path, image)).toEqual(want);
  });

  it.each([
    ["/not-base64!", Errno.EINVAL],
    [`/${REF}/sha256:short`, Errno.EINVAL],
    [`/${REF}/${DIGEST}/use`, Errno.ENOENT],
    [`/${REF}/${DIGEST}/info/x`, Errno.ENOTDIR],
  ])("%s is %i", (path, errno) => {
    expect(parseStorePath(path, image)).toBe(errno);
  });
});

describe("LineLog", () => {
  it("says a line once per window, and again after it", () => {
    let t = 0;
    const said: string[] = [];
    const log = new LineLog(
      (l) => said.push(l),
      5000,
      () => t,
    );
    log.report("a");
    log.report("a");
    log.report("b");
    t = 4999;
    log.report("a");
    t = 5001;
    log.report("a");
    expect(said).toEqual(["a", "b", "a"]);
  });
});

describe("LayerStore lifecycle (real registry)", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let ref: string;
  let digest: string;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient();
    const blob = await esgzBlob([{ name: "etc/" }, { name: "etc/motd", body: "hi\n" }]);
    const { LayerReader, BufferRangeSource } = await import("@seekable/format");
    const toc = (await LayerReader.open(new BufferRangeSource(blob))).tocDigest;
    const repo = { registry: registry.host, repository: "seekable/lifecycle" };
    ref = await pushImage(client, repo, "v1", [{ blob, toc }]);
    const { sha } = await import("@seekable/test-kit/tar.js");
    digest = sha(blob);
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  it("frees a layer only when no use counts it, no file is open and it was idle long enough", async () => {
    let t = 1_000_000;
    const logs: string[] = [];
    const store = new LayerStore({
      client,
      log: (l) => logs.push(l),
      releaseAfterMs: 1000,
      now: () => t,
      guess: false,
    });
    const img = store.image(Buffer.from(ref).toString("base64")) as ImageEntry;
    expect(img).toBeDefined();
    const layer = await store.layer(img, digest);
    const released = () => logs.filter((l) => l.startsWith("released layer")).length;

    store.use(img, digest);
    t += 10_000;
    store.sweep(t);
    expect(released()).toBe(0); // counted by `use`

    store.release(img, digest);
    store.opened(layer, 1);
    t += 10_000;
    store.sweep(t);
    expect(released()).toBe(0); // a file is open

    store.opened(layer, -1); // touches it: idle from now
    store.sweep(t + 999);
    expect(released()).toBe(0);
    store.sweep(t + 1000);
    expect(released()).toBe(1);
    expect(layer.freed.signal.aborted).toBe(true);

    // A later access resolves it again, a new entry.
    const again = await store.layer(img, digest);
    // (compared by identity: printing a LayerEntry would walk its whole reader)
    expect(again === layer).toBe(false);
    store.close();
  });
});
