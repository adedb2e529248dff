import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { remoteLayer, storePath } from "../src/labels.js";

const D = (c: string) => `sha256:${c.repeat(64)}`;
const TOC = "containerd.io/snapshot/stargz/toc.digest";

describe("remoteLayer", () => {
  it("reads the stargz set (ctr-remote, nerdctl, seekable pull)", () => {
    const r = remoteLayer({
      "containerd.io/snapshot.ref": D("c"),
      "containerd.io/snapshot/remote/stargz.reference": "127.0.0.1:5000/a/b:v1",
      "containerd.io/snapshot/remote/stargz.digest": D("1"),
      [TOC]: D("2"),
    });
    expect(r).toMatchObject({
      remote: {
        target: D("c"),
        refText: "127.0.0.1:5000/a/b:v1",
        digest: D("1"),
        tocDigest: D("2"),
      },
    });
  });

  it("reads the CRI set and pins the reference to the manifest digest", () => {
    const r = remoteLayer({
      "containerd.io/snapshot.ref": D("c"),
      "containerd.io/snapshot/cri.image-ref": "127.0.0.1:5000/a/b:v1",
      "containerd.io/snapshot/cri.layer-digest": D("1"),
      "containerd.io/snapshot/cri.manifest-digest": D("9"),
      [TOC]: D("2"),
    });
    expect(r).toMatchObject({ remote: { refText: `127.0.0.1:5000/a/b@${D("9")}` } });
  });

  it("a layer without a TOC digest, or with labels that do not parse, is local (with the reason)", () => {
    const base = {
      "containerd.io/snapshot.ref": D("c"),
      "containerd.io/snapshot/remote/stargz.reference": "127.0.0.1:5000/a/b:v1",
      "containerd.io/snapshot/remote/stargz.digest": D("1"),
    };
    expect(remoteLayer(base)).toEqual({ local: expect.stringMatching(/not eStargz/) });
    expect(remoteLayer({ ...base, [TOC]: "md5:x" })).toEqual({
      local: expect.stringMatching(/TOC digest/),
    });
    expect(
      remoteLayer({
        ...base,
        [TOC]: D("2"),
        "containerd.io/snapshot/remote/stargz.digest": "../x",
      }),
    ).toEqual({ local: expect.stringMatching(/layer digest/) });
    expect(
      remoteLayer({
        ...base,
        [TOC]: D("2"),
        "containerd.io/snapshot/remote/stargz.reference": "::",
      }),
    ).toEqual({ local: expect.stringMatching(/image reference/) });
  });

  it("no target label: an ordinary Prepare", () => {
    expect(remoteLayer({ [TOC]: D("2") })).toBeUndefined();
  });

  it("names the store's directory as seekable store lays it out", () => {
    expect(storePath("r:1", D("1"))).toBe(`${Buffer.from("r:1").toString("base64")}/${D("1")}`);
  });

  it("any label values: a remote layer with well-formed digests, a local reason, or nothing; never a throw", () => {
    const keys = [
      "containerd.io/snapshot.ref",
      "containerd.io/snapshot/remote/stargz.reference",
      "containerd.io/snapshot/remote/stargz.digest",
      "containerd.io/snapshot/cri.image-ref",
      "containerd.io/snapshot/cri.layer-digest",
      "containerd.io/snapshot/cri.manifest-digest",
      TOC,
    ];
    const value = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.constant(D("a")),
      fc.constant("r.io/a:b"),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), value), (labels) => {
        const r = remoteLayer(labels);
        if (r && "remote" in r) {
          expect(r.remote.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
          expect(r.remote.tocDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
          expect(storePath(r.remote.refText, r.remote.digest)).not.toMatch(/\.\.|^\//);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
