// Fault injection: a proxy of our own between the client and the real registry produces what
// flaky networks, CDNs and other registries do. Each case must end in the right bytes or a
// clear error — never wrong bytes, never a hang.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import {
  type FaultProxy,
  type ProxyLogEntry,
  type Rule,
  startFaultProxy,
} from "@seekable/test-kit/fault-proxy.js";
import { type RunningRegistry, startRegistry } from "@seekable/test-kit/registry.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  fetchBlob,
  getBlob,
  getManifest,
  parseReference,
  pushBlob,
  RegistryBlobSource,
  RegistryClient,
  type RegistryClientOptions,
  RegistryError,
  readBlobRanges,
} from "../src/index.js";
import { bytes, pushImage, sha256 } from "./util.js";

let registry: RunningRegistry;
let proxy: FaultProxy;
const clients: RegistryClient[] = [];

const data = bytes(16 << 20, 99);
const digest = sha256(data);

/** A client with short timeouts and backoff so failures end fast. */
function newClient(options: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({
    credentials: async () => undefined,
    retry: { attempts: 4, minDelayMs: 5, maxDelayMs: 40 },
    timeouts: { headersMs: 400, bodyMs: 400, connectMs: 1000 },
    ...options,
  });
  clients.push(c);
  return c;
}

const repo = () => parseReference(`${proxy.host}/faults/blob`);
const blobGets = () => proxy.log.filter((e) => e.method === "GET" && e.url.includes("/blobs/"));
const isBlobGet: (f: Rule) => Rule = (f) => (req, entry) =>
  req.method === "GET" && req.url?.includes("/blobs/") ? f(req, entry) : undefined;

/** Applies `fault` to the first `n` blob GETs, then lets requests through. */
function firstN(n: number, fault: ReturnType<Rule>): Rule {
  let seen = 0;
  return isBlobGet(() => (seen++ < n ? fault : undefined));
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const slice = (a: number, b: number) => data.subarray(a, b);

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const direct = newClient();
  await pushBlob(
    direct,
    parseReference(`${registry.host}/faults/blob`),
    { digest, size: data.length },
    data,
    { chunkSize: 8 << 20 },
  );
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await proxy?.close();
  await registry?.stop();
});

beforeEach(() => {
  proxy.rule = undefined;
  proxy.log.length = 0;
});

describe("retries", () => {
  it("retries 500 and 503, then returns the right bytes", async () => {
    let n = 0;
    proxy.rule = isBlobGet(() =>
      n++ === 0
        ? { kind: "status", status: 500 }
        : n === 2
          ? { kind: "status", status: 503 }
          : undefined,
    );
    const got = await readBlobRanges(newClient(), repo(), digest, [{ start: 10, end: 20 }]);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(slice(10, 20));
    expect(blobGets()).toHaveLength(3);
  });

  it("gives up with one clear line after the last attempt", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "status", status: 500 }));
    const err = await readBlobRanges(newClient(), repo(), digest, [{ start: 0, end: 1 }]).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(
      `${proxy.host}/faults/blob@${digest}: unexpected 500 after 4 attempts`,
    );
    expect(blobGets()).toHaveLength(4);
  });

  it("does not retry 501", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "status", status: 501 }));
    await expect(fetchBlob(newClient(), repo(), digest)).rejects.toThrow(/: unexpected 501$/);
    expect(blobGets()).toHaveLength(1);
  });

  it("honours Retry-After on 429", async () => {
    proxy.rule = firstN(1, { kind: "status", status: 429, headers: { "retry-after": "1" } });
    const t0 = Date.now();
    const got = await readBlobRanges(newClient(), repo(), digest, [{ start: 0, end: 5 }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(slice(0, 5));
  });

  it("fails at once when Retry-After is longer than it will wait", async () => {
    proxy.rule = isBlobGet(() => ({
      kind: "status",
      status: 429,
      body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}',
      headers: { "retry-after": "3600" },
    }));
    await expect(
      readBlobRanges(newClient(), repo(), digest, [{ start: 0, end: 5 }]),
    ).rejects.toThrow(/toomanyrequests: rate limit exceeded; server asks to retry after 3600 s$/);
    // One request: no retry was scheduled (a wait of an hour would time the test out).
    expect(blobGets()).toHaveLength(1);
  });

  it("retries a connection reset before the headers", async () => {
    proxy.rule = firstN(2, { kind: "reset-before-headers" });
    const got = await readBlobRanges(newClient(), repo(), digest, [{ start: 7, end: 9 }]);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(slice(7, 9));
  });

  it("retries a range read whose connection resets mid-body", async () => {
    proxy.rule = firstN(1, { kind: "reset", after: 1000 });
    const got = await readBlobRanges(newClient(), repo(), digest, [{ start: 0, end: 300_000 }]);
    expect(Buffer.compare(Buffer.from(got.data[0] as Uint8Array), slice(0, 300_000))).toBe(0);
  });

  it("resumes a whole-blob download after a reset, without fetching the start again", async () => {
    proxy.rule = firstN(1, { kind: "reset", after: 4 << 20 });
    const client = newClient();
    const got = await collect(getBlob(client, repo(), digest));
    expect(Buffer.compare(got, data)).toBe(0);
    const gets = blobGets();
    expect(gets).toHaveLength(2);
    expect(gets[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(client.stats.bytesFetched).toBe(data.length);
  });

  it("counts failed starts and broken bodies of one download against one attempt budget", async () => {
    // Alternate a 500 with a body cut short: a download must not get a fresh budget per kind.
    let n = 0;
    proxy.rule = isBlobGet(() =>
      n++ % 2 === 0 ? { kind: "status", status: 500 } : { kind: "reset", after: 1 << 20 },
    );
    const err = await fetchBlob(newClient(), repo(), digest).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toMatch(/ after 4 attempts$/);
    expect(blobGets()).toHaveLength(4);
  });

  it("retries a truncated body, then succeeds", async () => {
    proxy.rule = firstN(2, { kind: "truncate", after: 10 });
    const got = await readBlobRanges(newClient(), repo(), digest, [{ start: 1000, end: 2000 }]);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(slice(1000, 2000));
  });

  it("reports a body that is always truncated", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "truncate", after: 10 }));
    const err = await readBlobRanges(newClient(), repo(), digest, [
      { start: 1000, end: 2000 },
    ]).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toMatch(/: body shorter than promised.* after 4 attempts$/);
  });
});

describe("timeouts and abort", () => {
  it("times out waiting for headers instead of hanging", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "delay", ms: 10_000 }));
    const t0 = Date.now();
    const err = await readBlobRanges(
      newClient({ retry: { attempts: 2, minDelayMs: 5 } }),
      repo(),
      digest,
      [{ start: 0, end: 1 }],
    ).catch((e) => e);
    expect(err.message).toMatch(/: timed out waiting for response headers after 2 attempts$/);
    expect(err.kind).toBe("timeout");
    expect(Date.now() - t0).toBeLessThan(5000); // far below the server's 10 s stall
  });

  it("times out on a stalled body", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "stall", after: 100 }));
    const err = await fetchBlob(
      newClient({ retry: { attempts: 2, minDelayMs: 5 } }),
      repo(),
      digest,
    ).catch((e) => e);
    expect(err.message).toMatch(/: timed out waiting for response body after 2 attempts$/);
  });

  it("stops at once when aborted", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "delay", ms: 3000 }));
    const source = new RegistryBlobSource(
      newClient({ timeouts: { headersMs: 10_000 } }),
      repo(),
      digest,
      data.length,
    );
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user cancelled")), 100);
    // The abort's own reason: a read that ignored it would end with the 10 s headers timeout.
    await expect(source.read([{ offset: 0, length: 10 }], ac.signal)).rejects.toThrow(
      "user cancelled",
    );
  });
});

describe("range quirks", () => {
  const far = [
    { offset: 100, length: 50 },
    { offset: 5_000_000, length: 100 },
    { offset: 12_000_000, length: 1000 },
  ];
  const check = (got: Uint8Array[]) => {
    for (const [i, r] of far.entries()) {
      expect(Buffer.from(got[i] as Uint8Array)).toEqual(slice(r.offset, r.offset + r.length));
    }
  };
  const multiGets = () => blobGets().filter((e) => e.range?.includes(","));

  it("drops a 200 answer to a multi-range request unread and falls back to single ranges", async () => {
    proxy.rule = isBlobGet((req) =>
      req.headers.range?.includes(",") ? { kind: "ignore-range" } : undefined,
    );
    const client = newClient();
    const source = new RegistryBlobSource(client, repo(), digest, data.length);
    check(await source.read(far));
    expect(client.hostQuirks(proxy.host).multiRange).toBe(false);
    // The client hung up before the blob was through.
    await expect.poll(() => (multiGets()[0] as ProxyLogEntry).finished).toBe(false);
    expect(client.stats.bytesFetched).toBeLessThan(10_000);
    // Remembered: the next read sends single ranges straight away.
    proxy.log.length = 0;
    check(await source.read(far));
    expect(multiGets()).toHaveLength(0);
    expect(blobGets()).toHaveLength(3);
  });

  it("answers a 200 to a single range with a clear error, the body dropped", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "ignore-range" }));
    const client = newClient();
    const err = await readBlobRanges(client, repo(), digest, [{ start: 5, end: 10 }]).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe("RANGE_IGNORED");
    expect(err.message).toBe(
      `${proxy.host}/faults/blob@${digest}: server ignored the Range request (200 with the whole blob)`,
    );
    expect(client.stats.bytesFetched).toBe(0);
    await expect.poll(() => blobGets()[0]?.finished).toBe(false);
  });

  for (const status of [400, 501]) {
    it(`falls back to parallel single ranges after a ${status} to multi-range, and remembers`, async () => {
      proxy.rule = isBlobGet((req) =>
        req.headers.range?.includes(",") ? { kind: "status", status } : undefined,
      );
      const client = newClient();
      const source = new RegistryBlobSource(client, repo(), digest, data.length);
      check(await source.read(far));
      expect(client.hostQuirks(proxy.host).multiRange).toBe(false);
      expect(multiGets()).toHaveLength(1);
      check(await source.read(far));
      expect(multiGets()).toHaveLength(1);
    });
  }
});

describe("redirects", () => {
  let authRegistry: RunningRegistry;
  let front: FaultProxy;
  let storage: FaultProxy;
  const creds = { username: "alice", password: "wonderland" };
  const small = bytes(200_000, 5);
  const smallDigest = sha256(small);

  beforeAll(async () => {
    authRegistry = await startRegistry({ users: [creds] });
    front = await startFaultProxy(authRegistry.url);
    // The "object store" on another port: it needs no Authorization, like a pre-signed URL.
    storage = await startFaultProxy(authRegistry.url, {
      addHeaders: { authorization: `Basic ${Buffer.from("alice:wonderland").toString("base64")}` },
    });
    await pushBlob(
      newClient({ credentials: creds }),
      parseReference(`${authRegistry.host}/r/blob`),
      { digest: smallDigest, size: small.length },
      small,
    );
  });

  afterAll(async () => {
    await front?.close();
    await storage?.close();
    await authRegistry?.stop();
  });

  it("follows a 307 to another port with Range intact and without the Authorization header", async () => {
    front.rule = (req) =>
      req.method === "GET" && req.url?.includes("/blobs/") && req.headers.authorization
        ? { kind: "redirect", location: `${storage.url}${req.url}` }
        : undefined;
    const client = newClient({ credentials: creds });
    const r = parseReference(`${front.host}/r/blob`);
    const got = await readBlobRanges(client, r, smallDigest, [{ start: 1000, end: 1010 }]);
    expect(Buffer.from(got.data[0] as Uint8Array)).toEqual(small.subarray(1000, 1010));
    expect(Buffer.compare(Buffer.from(await fetchBlob(client, r, smallDigest)), small)).toBe(0);
    const redirected = front.log.filter((e) => e.authorization && e.url.includes("/blobs/"));
    expect(redirected.length).toBe(2);
    expect(storage.log).toHaveLength(2);
    expect(storage.log[0]?.authorization).toBeUndefined();
    expect(storage.log[0]?.range).toBe("bytes=1000-1009");
    expect(storage.log[1]?.authorization).toBeUndefined();
  });
});

describe("altered bytes", () => {
  it("fails whole-blob GETs on a digest mismatch, as buffer and as stream", async () => {
    proxy.rule = isBlobGet(() => ({ kind: "corrupt", at: 1234 }));
    const client = newClient();
    const err = await fetchBlob(client, repo(), digest).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("verification");
    expect(err.message).toMatch(
      new RegExp(`^${proxy.host}/faults/blob@${digest}: digest mismatch: got sha256:[0-9a-f]{64}$`),
    );
    await expect(collect(getBlob(client, repo(), digest))).rejects.toThrow(/digest mismatch/);
  });

  it("fails manifest GETs whose bytes do not match the digest", async () => {
    const img = await pushImage(
      newClient(),
      parseReference(`${registry.host}/faults/img:v1`),
      bytes(100, 3),
    );
    proxy.rule = (req) =>
      req.method === "GET" && req.url?.includes("/manifests/")
        ? { kind: "corrupt", at: 20 }
        : undefined;
    const client = newClient();
    const byTag = parseReference(`${proxy.host}/faults/img:v1`);
    await expect(getManifest(client, byTag)).rejects.toThrow(`manifest digest mismatch`);
    const byDigest = parseReference(`${proxy.host}/faults/img@${img.manifestDigest}`);
    await expect(getManifest(client, byDigest)).rejects.toThrow(
      new RegExp(
        `^${proxy.host}/faults/img@${img.manifestDigest}: manifest digest mismatch: got sha256:`,
      ),
    );
  });
});

describe("dripping servers", () => {
  // Bodies that never go silent (so no idle timeout fires) but crawl: the floor must end them
  // with one retry and then a clear error. Short windows keep the test fast; the defaults are
  // 1 KiB/s over 30 s.
  const WINDOW = 300;
  const dripClient = (timeouts: RegistryClientOptions["timeouts"] = {}) =>
    newClient({
      timeouts: {
        headersMs: 2000,
        bodyMs: 2000,
        connectMs: 1000,
        minBytesPerSecond: 1024,
        rateWindowMs: WINDOW,
        ...timeouts,
      },
    });
  const drip = { kind: "drip", bytes: 10, everyMs: 50 } as const; // 200 bytes/s
  /** The operation's outcome, or "hung" when it has not ended well past its bound. */
  const bounded = <T>(p: Promise<T>, ms = 8000) =>
    Promise.race([p.catch((e: unknown) => e), new Promise((r) => setTimeout(r, ms, "hung"))]);

  async function expectSlow(op: Promise<unknown>, requests: () => number) {
    const t0 = Date.now();
    const err = await bounded(op);
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.code).toBe("SLOW_TRANSFER");
    expect(e.kind).toBe("timeout");
    expect(e.message).toMatch(
      /: transfer too slow: \d+ bytes in 0\.3 s \(floor 1024 bytes\/s\) after 2 attempts$/,
    );
    expect(requests()).toBe(2); // one retry on a fresh connection, then the error
    expect(Date.now() - t0).toBeLessThan(4 * WINDOW + 1500);
  }

  it("ends a dripping whole-blob download (buffer and stream) with a clear error", async () => {
    proxy.rule = isBlobGet(() => drip);
    await expectSlow(fetchBlob(dripClient(), repo(), digest), () => blobGets().length);
    proxy.log.length = 0;
    await expectSlow(collect(getBlob(dripClient(), repo(), digest)), () => blobGets().length);
  });

  it("ends a dripping range read and blob-source read with a clear error", async () => {
    proxy.rule = isBlobGet(() => drip);
    await expectSlow(
      readBlobRanges(dripClient(), repo(), digest, [{ start: 0, end: 100_000 }]),
      () => blobGets().length,
    );
    proxy.log.length = 0;
    const source = new RegistryBlobSource(dripClient(), repo(), digest, data.length);
    await expectSlow(source.read([{ offset: 5000, length: 50_000 }]), () => blobGets().length);
  });

  it("ends a dripping manifest GET with a clear error", async () => {
    await pushImage(newClient(), parseReference(`${registry.host}/faults/drip:v1`), bytes(100, 4));
    const isManifestGet = (req: { method?: string; url?: string }) =>
      req.method === "GET" && req.url?.includes("/manifests/");
    // A one-byte drip: a manifest is small, and a few hundred bytes fit under most floors.
    proxy.rule = (req) =>
      isManifestGet(req) ? { kind: "drip", bytes: 1, everyMs: 20 } : undefined;
    await expectSlow(
      getManifest(dripClient(), parseReference(`${proxy.host}/faults/drip:v1`)),
      () => proxy.log.filter(isManifestGet).length,
    );
  });

  it("ends a dripping token response with a clear error naming the token server", async () => {
    let tokenRequests = 0;
    const tokens = createServer((_req, res) => {
      tokenRequests++;
      res.writeHead(200, { "content-type": "application/json" });
      const body = Buffer.from(JSON.stringify({ token: "x".repeat(4000) }));
      let i = 0;
      const t = setInterval(() => {
        if (res.destroyed || i >= body.length) return clearInterval(t);
        res.write(body.subarray(i, i + 5));
        i += 5;
      }, 20);
      res.on("close", () => clearInterval(t));
    });
    await new Promise<void>((r) => tokens.listen(0, "127.0.0.1", r));
    const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;
    try {
      proxy.rule = () => ({
        kind: "status",
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${realm}",service="test"` },
      });
      const t0 = Date.now();
      const err = await bounded(
        readBlobRanges(dripClient(), repo(), digest, [{ start: 0, end: 10 }]),
      );
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).code).toBe("SLOW_TRANSFER");
      expect((err as RegistryError).message).toMatch(
        /token server http:\/\/127\.0\.0\.1:\d+\/token: transfer too slow: .* after 2 attempts$/,
      );
      expect(tokenRequests).toBe(2);
      expect(Date.now() - t0).toBeLessThan(4 * WINDOW + 1500);
    } finally {
      tokens.closeAllConnections();
      await new Promise((r) => tokens.close(r));
    }
  });

  it("ends an attempt past its deadline, retries once, then fails clearly", async () => {
    // Fast enough for the floor, never done: only the deadline ends it.
    proxy.rule = isBlobGet(() => ({ kind: "drip", bytes: 4096, everyMs: 20 }));
    const t0 = Date.now();
    const err = await bounded(
      fetchBlob(dripClient({ minBytesPerSecond: 0, deadlineMs: 400 }), repo(), digest),
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe("DEADLINE");
    expect((err as RegistryError).message).toMatch(
      /: no complete response within 0\.4 s after 2 attempts$/,
    );
    expect(blobGets()).toHaveLength(2);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("does not blame the server for a slow consumer", async () => {
    // Fast server, consumer stalls for several windows: the clock stops while it is behind.
    const client = dripClient();
    const chunks: Buffer[] = [];
    let stalls = 0;
    for await (const c of getBlob(client, repo(), digest)) {
      chunks.push(c as Buffer);
      if (stalls < 3) {
        stalls++;
        await new Promise((r) => setTimeout(r, 3 * WINDOW));
      }
    }
    expect(Buffer.compare(Buffer.concat(chunks), data)).toBe(0);
    expect(blobGets()).toHaveLength(1);
  });
});
