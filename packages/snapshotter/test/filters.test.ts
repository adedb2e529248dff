import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { matches, parseFilter } from "../src/filters.js";

const snap = {
  name: "default/3/sha256:abc",
  parent: "",
  kind: "committed",
  labels: { "containerd.io/snapshot.ref": "sha256:abc", a: "x" },
};

describe("filters", () => {
  it("the filter containerd's metadata layer sends after AlreadyExists", () => {
    const f = parseFilter('labels."containerd.io/snapshot.ref"==sha256:abc,parent==""');
    expect(matches(snap, [f])).toBe(true);
    expect(matches({ ...snap, parent: "p" }, [f])).toBe(false);
    expect(matches({ ...snap, labels: {} }, [f])).toBe(false);
  });

  it("!=, ~=, presence, alternatives", () => {
    expect(matches(snap, [parseFilter("kind!=active")])).toBe(true);
    expect(matches(snap, [parseFilter("name~=^default/")])).toBe(true);
    expect(matches(snap, [parseFilter("labels.a")])).toBe(true);
    expect(matches(snap, [parseFilter("labels.b")])).toBe(false);
    expect(matches(snap, [parseFilter("kind==view"), parseFilter("labels.a==x")])).toBe(true);
    expect(matches(snap, [])).toBe(true);
  });

  it("refuses what it does not understand", () => {
    expect(() => parseFilter("==x")).toThrow(/filter/);
    expect(() => parseFilter("name==a,,kind")).toThrow(/filter/);
    expect(() => parseFilter('"unterminated')).toThrow(/filter/);
    expect(() => parseFilter("name~=(")).toThrow(/not a pattern/);
  });

  it("any string parses or is refused with an Error, and never hangs", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        try {
          const f = parseFilter(s);
          matches(snap, [f]); // a parsed filter is usable on any snapshot
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
