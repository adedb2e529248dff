// Pure protocol pieces: WWW-Authenticate, scopes, Content-Range, multipart/byteranges,
// range coalescing, platforms, Retry-After and backoff.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  byterangesBoundary,
  coalesce,
  DEFAULT_RETRY,
  isRetryableStatus,
  MultipartError,
  parseByteranges,
  parseContentRange,
  parsePlatform,
  parseRetryAfter,
  parseWwwAuthenticate,
  rangeHeader,
  selectPlatform,
  unionScopes,
} from "../src/index.js";

describe("WWW-Authenticate", () => {
  it("parses a distribution Bearer challenge with commas inside quotes", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push",error="insufficient_scope"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:samalba/my-app:pull,push",
          error: "insufficient_scope",
        },
      },
    ]);
  });

  it("parses several challenges, bare schemes, escapes and several headers", () => {
    expect(
      parseWwwAuthenticate(['Basic realm="a \\"b\\"", Bearer realm=x, charset=UTF-8', "Negotiate"]),
    ).toEqual([
      { scheme: "basic", params: { realm: 'a "b"' } },
      { scheme: "bearer", params: { realm: "x", charset: "UTF-8" } },
      { scheme: "negotiate", params: {} },
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });

  it("round-trips quoted parameters (property)", () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
    const value = fc.string({ maxLength: 30 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, minLength: 1, maxLength: 5 }),
        (params) => {
          const header = `Bearer ${params.map(([k, v]) => `${k}="${v.replace(/["\\]/g, "\\$&")}"`).join(", ")}`;
          expect(parseWwwAuthenticate(header)).toEqual([
            { scheme: "bearer", params: Object.fromEntries(params) },
          ]);
        },
      ),
    );
  });

  it("merges scopes whatever the action order", () => {
    expect(
      unionScopes(["repository:a:pull"], ["repository:a:push,pull", "repository:b:pull", ""]),
    ).toEqual(["repository:a:pull,push", "repository:b:pull"]);
  });
});

describe("Content-Range and Range", () => {
  it("parses and rejects", () => {
    expect(parseContentRange("bytes 0-9/100")).toEqual({ start: 0, end: 9, total: 100 });
    expect(parseContentRange("bytes 5-5/*")).toEqual({ start: 5, end: 5, total: undefined });
    for (const bad of [
      undefined,
      "",
      "bytes */100",
      "bytes 9-0/100",
      "bytes 0-100/100",
      "items 0-1/2",
    ]) {
      expect(parseContentRange(bad)).toBeUndefined();
    }
  });

  it("formats Range headers", () => {
    expect(rangeHeader([{ start: 0, end: 10 }, { start: 100, end: 101 }, { suffix: 51 }])).toBe(
      "bytes=0-9,100-100,-51",
    );
  });
});

/** Builds a multipart/byteranges body the way Go's net/http does. */
function multipart(
  boundary: string,
  parts: { start: number; data: Buffer }[],
  total: number,
  lf = "\r\n",
): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    out.push(
      Buffer.from(
        `${lf}--${boundary}${lf}Content-Type: application/octet-stream${lf}Content-Range: bytes ${p.start}-${p.start + p.data.length - 1}/${total}${lf}${lf}`,
      ),
      p.data,
    );
  }
  out.push(Buffer.from(`${lf}--${boundary}--${lf}`));
  return Buffer.concat(out);
}

describe("multipart/byteranges", () => {
  it("finds the boundary", () => {
    expect(byterangesBoundary("multipart/byteranges; boundary=abc123")).toBe("abc123");
    expect(byterangesBoundary('multipart/byteranges; boundary="a b"')).toBe("a b");
    expect(byterangesBoundary("application/octet-stream")).toBeUndefined();
  });

  it("parses parts whose data contains the boundary (property)", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9]{1,20}$/),
        fc.array(fc.tuple(fc.nat(10_000), fc.uint8Array({ minLength: 1, maxLength: 200 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.boolean(),
        (boundary, raw, bareLf) => {
          const parts = raw.map(([start, data], i) =>
            // Plant the delimiter inside some parts' data.
            ({
              start,
              data:
                i % 2
                  ? Buffer.concat([Buffer.from(data), Buffer.from(`\r\n--${boundary}\r\n`)])
                  : Buffer.from(data),
            }),
          );
          const body = multipart(boundary, parts, 20_000, bareLf ? "\n" : "\r\n");
          const got = parseByteranges(body, boundary);
          expect(got.map((p) => [p.start, p.end, p.total, Buffer.from(p.data)])).toEqual(
            parts.map((p) => [p.start, p.start + p.data.length - 1, 20_000, p.data]),
          );
        },
      ),
    );
  });

  it("marks a cut-off body as truncated, a malformed one as not", () => {
    const body = multipart("B", [{ start: 0, data: Buffer.from("hello world") }], 11);
    for (let cut = 1; cut < body.length - 4; cut++) {
      let err: unknown;
      try {
        parseByteranges(body.subarray(0, cut), "B");
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${cut}`).toBeInstanceOf(MultipartError);
    }
    const noRange = Buffer.from("--B\r\nContent-Type: x\r\n\r\nabc\r\n--B--\r\n");
    expect(() => parseByteranges(noRange, "B")).toThrow(
      expect.objectContaining({ truncated: false }),
    );
    const tooLong = Buffer.from("--B\r\nContent-Range: bytes 0-1/3\r\n\r\nabc\r\n--B--\r\n");
    expect(() => parseByteranges(tooLong, "B")).toThrow(/longer than its Content-Range/);
  });
});

describe("coalesce", () => {
  it("merges overlapping, adjacent and near ranges", () => {
    const spans = coalesce(
      [
        { offset: 100, length: 10 },
        { offset: 0, length: 10 },
        { offset: 10, length: 5 },
        { offset: 5, length: 2 },
        { offset: 50, length: 0 },
        { offset: 130, length: 1 },
      ],
      20,
    );
    expect(spans).toEqual([
      { start: 0, end: 15, members: [1, 3, 2] },
      { start: 100, end: 131, members: [0, 5] },
    ]);
  });

  it("covers every range, keeps spans apart by more than the gap (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ offset: fc.nat(5000), length: fc.nat(300) }), { maxLength: 40 }),
        fc.nat(200),
        fc.integer({ min: 1, max: 2000 }),
        (ranges, gap, maxSpan) => {
          const spans = coalesce(ranges, gap, maxSpan);
          const seen = spans.flatMap((s) => s.members).sort((a, b) => a - b);
          expect(seen).toEqual(ranges.flatMap((r, i) => (r.length > 0 ? [i] : [])));
          for (const s of spans) {
            for (const i of s.members) {
              const r = ranges[i] as { offset: number; length: number };
              expect(r.offset).toBeGreaterThanOrEqual(s.start);
              expect(r.offset + r.length).toBeLessThanOrEqual(s.end);
            }
          }
          for (let i = 1; i < spans.length; i++) {
            const prev = spans[i - 1] as { end: number };
            expect((spans[i] as { start: number }).start).toBeGreaterThan(prev.end); // disjoint, not adjacent
          }
        },
      ),
    );
  });
});

describe("platforms", () => {
  const d = (os: string, architecture: string, variant?: string) => ({
    mediaType: "m",
    digest: `${os}/${architecture}/${variant ?? ""}`,
    size: 1,
    platform: { os, architecture, ...(variant && { variant }) },
  });
  const index = [
    d("unknown", "unknown"),
    d("linux", "amd64"),
    d("linux", "arm", "v6"),
    d("linux", "arm", "v7"),
    d("linux", "arm64", "v8"),
  ];

  it("parses and normalizes", () => {
    expect(parsePlatform("linux/x86_64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("Linux/aarch64")).toEqual({ os: "linux", architecture: "arm64" });
    expect(parsePlatform("linux/arm/7")).toEqual({
      os: "linux",
      architecture: "arm",
      variant: "v7",
    });
    expect(() => parsePlatform("linux")).toThrow(/os\/arch/);
  });

  it("selects, with the arch's baseline variant by default", () => {
    expect(selectPlatform(index, parsePlatform("linux/amd64"))?.digest).toBe("linux/amd64/");
    expect(selectPlatform(index, parsePlatform("linux/arm"))?.digest).toBe("linux/arm/v7");
    expect(selectPlatform(index, parsePlatform("linux/arm/v6"))?.digest).toBe("linux/arm/v6");
    expect(selectPlatform(index, parsePlatform("linux/arm64"))?.digest).toBe("linux/arm64/v8");
    expect(selectPlatform([d("linux", "arm64")], parsePlatform("linux/arm64/v8"))?.digest).toBe(
      "linux/arm64/",
    );
    expect(selectPlatform(index, parsePlatform("windows/amd64"))).toBeUndefined();
  });
});

describe("retry policy", () => {
  it("retries 429 and 5xx but 501", () => {
    expect([429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 416, 501].some(isRetryableStatus)).toBe(false);
  });

  it("parses Retry-After as seconds or a date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(parseRetryAfter(new Date(10_000 + 5000).toUTCString(), 10_000)).toBe(5000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped (property)", () => {
    fc.assert(
      fc.property(fc.nat(30), fc.double({ min: 0, max: 0.999, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, DEFAULT_RETRY, () => r);
        const base = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.minDelayMs * 2 ** attempt);
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThan(base);
      }),
    );
  });
});
