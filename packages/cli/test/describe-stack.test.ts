// `--debug` prints the error's stack and the stack of each cause it was made from.
import { FormatError } from "@seekable/format";
import { describe, expect, it } from "vitest";
import { CliError, describeError, describeStack } from "../src/errors.js";

describe("describeStack", () => {
  it("prints the cause chain, outermost first", () => {
    const root = new TypeError("reading 'header'");
    const mid = new FormatError("layer sha256:abc: bad", { cause: root });
    const top = new CliError("in.tar: layer sha256:abc: bad", true, { cause: mid });
    const text = describeStack(top);
    const i = text.indexOf("CliError: in.tar");
    const j = text.indexOf("Caused by: FormatError: layer sha256:abc");
    const k = text.indexOf("Caused by: TypeError: reading 'header'");
    expect(i).toBe(0);
    expect(j).toBeGreaterThan(i);
    expect(k).toBeGreaterThan(j);
  });

  it("stops on a cycle and prints non-Error causes", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(describeStack(b).match(/Caused by/g)).toHaveLength(1);
    expect(describeStack(new Error("x", { cause: "why" }))).toMatch(/Caused by: why$/);
  });

  it("the one line stays the outer message", () => {
    const e = new CliError("in.tar: bad", true, { cause: new Error("inner") });
    expect(describeError(e, "in.tar")).toBe("in.tar: bad");
  });
});
