import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatReference,
  isLoopbackHost,
  manifestTarget,
  parseBlobUrl,
  parseReference,
  RegistryClient,
  RegistryError,
  registryHost,
} from "../src/index.js";

const D = `sha256:${"ab".repeat(32)}`;

describe("parseReference", () => {
  it.each([
    ["alpine", { registry: "docker.io", repository: "library/alpine", tag: "latest" }],
    ["docker://alpine:3.19", { registry: "docker.io", repository: "library/alpine", tag: "3.19" }],
    ["user/app:v1", { registry: "docker.io", repository: "user/app", tag: "v1" }],
    [
      "index.docker.io/nginx",
      { registry: "docker.io", repository: "library/nginx", tag: "latest" },
    ],
    ["docker.io/a/b/c", { registry: "docker.io", repository: "a/b/c", tag: "latest" }],
    ["localhost/x", { registry: "localhost", repository: "x", tag: "latest" }],
    ["localhost:5000/x/y:t", { registry: "localhost:5000", repository: "x/y", tag: "t" }],
    ["127.0.0.1:5000/x:tag", { registry: "127.0.0.1:5000", repository: "x", tag: "tag" }],
    [`ghcr.io/o/r@${D}`, { registry: "ghcr.io", repository: "o/r", digest: D }],
    [
      `h.example:443/o/r:t@${D}`,
      { registry: "h.example:443", repository: "o/r", tag: "t", digest: D },
    ],
    ["[::1]:5000/x", { registry: "[::1]:5000", repository: "x", tag: "latest" }],
    ["Host/x", { registry: "Host", repository: "x", tag: "latest" }], // upper case: a host, like Docker
    ["a/b__c.d-e--f", { registry: "docker.io", repository: "a/b__c.d-e--f", tag: "latest" }],
  ])("%s", (input, want) => {
    expect(parseReference(input)).toEqual(want);
  });

  it("leaves the tag out when asked", () => {
    expect(parseReference("x.io/a", { defaultTag: false })).toEqual({
      registry: "x.io",
      repository: "a",
    });
  });

  it.each([
    ["", /empty/],
    ["x/Upper", /must be lowercase/],
    ["x:", /bad tag/],
    ["x@sha256:abc", /bad sha256 digest/],
    ["x@nope", /bad digest/],
    ["a//b", /bad repository name component ""/],
    ["host.io:99999/x", /bad port/],
    ["host.io/", /missing repository name/],
    ["-bad.io/x", /bad registry host/],
    [`x:${"t".repeat(129)}`, /bad tag/],
    [`h.io/${"a".repeat(260)}`, /longer than 255/],
  ])("rejects %j", (input, why) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toMatch(why);
    expect((err as RegistryError).message).toMatch(/^"/); // names the input
  });

  const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}$/);
  const host = fc.oneof(
    fc
      .tuple(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/),
        fc.constantFrom(".io", ".example.com", ""),
      )
      .map(([h, d]) => h + d),
    fc.constant("localhost"),
    fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `127.${a}.${b}.1`),
  );
  const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
  const tag = fc.option(fc.stringMatching(/^[\w][\w.-]{0,20}$/), { nil: undefined });
  const digest = fc.option(
    fc
      .uint8Array({ minLength: 32, maxLength: 32 })
      .map((b) => `sha256:${Buffer.from(b).toString("hex")}`),
    { nil: undefined },
  );

  it("parses what it formats (property)", () => {
    fc.assert(
      fc.property(
        host,
        port,
        fc.array(component, { minLength: 1, maxLength: 4 }),
        tag,
        digest,
        (h, p, path, t, d) => {
          const registry = p === undefined ? h : `${h}:${p}`;
          // A host without a dot or port is taken as a Docker Hub namespace, like Docker does.
          fc.pre(registry.includes(".") || registry.includes(":") || registry === "localhost");
          const text = `${registry}/${path.join("/")}${t !== undefined ? `:${t}` : ""}${d !== undefined ? `@${d}` : ""}`;
          const ref = parseReference(text);
          expect(ref.registry).toBe(registry);
          expect(ref.repository).toBe(path.join("/"));
          expect(ref.digest).toBe(d);
          expect(ref.tag).toBe(t ?? (d === undefined ? "latest" : undefined));
          expect(parseReference(formatReference(ref))).toEqual(ref);
          expect(parseReference(`docker://${text}`)).toEqual(ref);
        },
      ),
    );
  });

  it("never throws anything but a RegistryError (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          const ref = parseReference(s);
          expect(parseReference(formatReference(ref))).toEqual(ref);
        } catch (e) {
          expect(e).toBeInstanceOf(RegistryError);
        }
      }),
    );
  });
});

describe("hosts and URLs", () => {
  it("maps Docker Hub to its API host", () => {
    expect(registryHost("docker.io")).toBe("registry-1.docker.io");
    expect(registryHost("ghcr.io")).toBe("ghcr.io");
  });

  it("treats localhost and 127.0.0.0/8 as loopback", () => {
    for (const h of [
      "localhost",
      "localhost:5000",
      "127.0.0.1",
      "127.1.2.3:80",
      "[::1]:5000",
      "a.localhost",
    ]) {
      expect(isLoopbackHost(h)).toBe(true);
    }
    for (const h of [
      "128.0.0.1",
      "127.0.0.256",
      "ghcr.io",
      "localhost.example.com:5000",
      "10.0.0.1",
    ]) {
      expect(isLoopbackHost(h)).toBe(false);
    }
  });

  it("chooses plain HTTP for loopback, when asked, or per registry", () => {
    expect(new RegistryClient().origin("127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
    expect(new RegistryClient().origin("docker.io")).toBe("https://registry-1.docker.io");
    expect(new RegistryClient({ plainHttp: true }).origin("reg.lan:5000")).toBe(
      "http://reg.lan:5000",
    );
    expect(new RegistryClient({ plainHttp: ["reg.lan"] }).origin("reg.lan")).toBe("http://reg.lan");
    expect(new RegistryClient({ plainHttp: false }).origin("localhost:5000")).toBe(
      "https://localhost:5000",
    );
  });

  it("parses blob URLs", () => {
    expect(parseBlobUrl(`http://myhost:5000/v2/a/b/blobs/${D}`)).toEqual({
      reference: { registry: "myhost:5000", repository: "a/b", digest: D },
      plainHttp: true,
    });
    expect(parseBlobUrl(`https://ghcr.io/v2/o/r/blobs/${D}`).plainHttp).toBe(false);
    expect(() => parseBlobUrl("https://ghcr.io/v2/o/r/manifests/latest")).toThrow(/not a blob URL/);
    expect(() => parseBlobUrl("nope")).toThrow(/invalid blob URL/);
  });

  it("targets the digest before the tag", () => {
    expect(manifestTarget(parseReference(`x.io/a:t@${D}`))).toBe(D);
    expect(manifestTarget(parseReference("x.io/a:t"))).toBe("t");
  });
});
