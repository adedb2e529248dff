// The one LRU (memory chunk cache, mount's recent chunks): bounded by bytes, least recently
// used out first, `get` marks use and `has`/`peek` do not, checked against a model.
import { ByteLru, MemoryChunkCache } from "@seekable/reader";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const buf = (n: number) => new Uint8Array(n);

describe("ByteLru", () => {
  it("evicts the least recently used beyond maxBytes; get marks use, peek and has do not", () => {
    const lru = new ByteLru<string, Uint8Array>(10);
    expect(lru.add("a", buf(4))).toBe(true);
    expect(lru.add("b", buf(4))).toBe(true);
    lru.get("a"); // b is now the oldest
    lru.peek("b");
    lru.has("b");
    expect(lru.add("c", buf(4))).toBe(true);
    expect([lru.has("a"), lru.has("b"), lru.has("c")]).toEqual([true, false, true]);
    expect(lru.bytes).toBe(8);
    expect(lru.size).toBe(2);
  });

  it("keeps the first value of a key and refuses a value larger than the bound", () => {
    const lru = new ByteLru<string, Uint8Array>(10);
    const first = buf(3);
    lru.add("k", first);
    expect(lru.add("k", buf(5))).toBe(false);
    expect(lru.peek("k")).toBe(first);
    expect(lru.add("big", buf(11))).toBe(false);
    expect(lru.bytes).toBe(3);
    expect(lru.add("zero", buf(0))).toBe(true);
    expect(lru.delete("k")).toBe(true);
    expect(lru.delete("k")).toBe(false);
    expect(lru.bytes).toBe(0);
  });

  it("behaves like a model LRU under random operations", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("add"), key: fc.nat(7), n: fc.nat(12) }),
      fc.record({ kind: fc.constant("get"), key: fc.nat(7) }),
      fc.record({ kind: fc.constant("peek"), key: fc.nat(7) }),
      fc.record({ kind: fc.constant("delete"), key: fc.nat(7) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const max = 20;
        const lru = new ByteLru<number, Uint8Array>(max);
        let model: [number, number][] = []; // oldest first
        for (const o of ops) {
          const at = model.findIndex(([k]) => k === o.key);
          if (o.kind === "add") {
            const n = (o as { n: number }).n;
            const stored = lru.add(o.key, buf(n));
            expect(stored).toBe(n <= max && at < 0);
            if (!stored) continue;
            model.push([o.key, n]);
            let total = model.reduce((s, [, m]) => s + m, 0);
            while (total > max) total -= (model.shift() as [number, number])[1];
          } else if (o.kind === "get") {
            expect(lru.get(o.key)?.byteLength).toBe(at < 0 ? undefined : model[at][1]);
            if (at >= 0) model = [...model.slice(0, at), ...model.slice(at + 1), model[at]];
          } else if (o.kind === "peek") {
            expect(lru.peek(o.key)?.byteLength).toBe(at < 0 ? undefined : model[at][1]);
          } else {
            expect(lru.delete(o.key)).toBe(at >= 0);
            if (at >= 0) model.splice(at, 1);
          }
          expect(lru.bytes).toBe(model.reduce((s, [, m]) => s + m, 0));
          expect(lru.size).toBe(model.length);
          expect(lru.bytes).toBeLessThanOrEqual(max);
        }
      }),
    );
  });

  it("MemoryChunkCache stays byte-bounded", () => {
    const c = new MemoryChunkCache(100);
    for (let i = 0; i < 10; i++) c.put(`d${i}`, buf(30));
    const held = Array.from({ length: 10 }, (_, i) => c.get(`d${i}`) !== undefined);
    expect(held).toEqual([false, false, false, false, false, false, false, true, true, true]);
  });
});
