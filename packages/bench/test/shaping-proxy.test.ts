import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { median, physicalLimit, spread } from "../src/report.js";
import { startShapingProxy } from "../src/shaping-proxy.js";
import { niceScale } from "../src/svg-chart.js";

describe("the shaping proxy", () => {
  const body = Buffer.alloc(256 << 10, 7);
  const origin = createServer((req, res) => {
    if (req.headers.range === "bytes=0-9") {
      res.writeHead(206, { "content-range": `bytes 0-9/${body.length}`, "content-length": 10 });
      return res.end(body.subarray(0, 10));
    }
    res.writeHead(200, { "content-length": body.length });
    res.end(body);
  });
  let url: string;

  beforeAll(async () => {
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => origin.close(() => r())));

  it("passes requests and ranges through, and counts the bytes it sent", async () => {
    const proxy = await startShapingProxy({ upstream: url });
    try {
      const whole = Buffer.from(await (await fetch(`${proxy.url}/blob`)).arrayBuffer());
      expect(whole.equals(body)).toBe(true);
      const r = await fetch(`${proxy.url}/blob`, { headers: { range: "bytes=0-9" } });
      expect(r.status).toBe(206);
      expect((await r.arrayBuffer()).byteLength).toBe(10);
      expect(proxy.counters.requests).toBe(2);
      expect(proxy.counters.bytes).toBe(body.length + 10);
      proxy.reset();
      expect(proxy.counters).toMatchObject({ requests: 0, bytes: 0 });
    } finally {
      proxy.dropConnections();
      await proxy.close();
    }
  });
});

describe("report arithmetic", () => {
  it("medians, spreads and chart scales", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(spread([1, 5, 3])).toMatchObject({ min: 1, max: 5 });
    const s = niceScale(7.3);
    expect(s.max).toBeGreaterThanOrEqual(7.3);
    expect(s.max % s.step).toBe(0);
    // 0.5 s warm + 3 x 50 ms + 12.5 MB at 100 Mbit/s (1 s)
    expect(physicalLimit(0.5, 12_500_000, { rttMs: 50, mbit: 100 })).toBeCloseTo(1.65, 9);
    expect(physicalLimit(0.5, 12_500_000, { rttMs: 25, mbit: 0 })).toBeCloseTo(0.575, 9);
  });
});
