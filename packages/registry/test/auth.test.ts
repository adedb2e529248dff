// Authentication against the real registry: Basic with htpasswd, and distribution's Bearer
// token mode with a token server of our own issuing real signed JWTs.
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FaultProxy, startFaultProxy } from "@seekable/test-kit/fault-proxy.js";
import { type RunningRegistry, startRegistry } from "@seekable/test-kit/registry.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dockerConfigCredentials,
  fetchBlob,
  getManifest,
  headManifest,
  parseCredentials,
  parseReference,
  pushBlob,
  RegistryBlobSource,
  RegistryClient,
  type RegistryClientOptions,
  RegistryError,
  runCredentialHelper,
} from "../src/index.js";
import { startTokenServer, type TokenServer } from "./token-server.js";
import { bytes, pushImage, sha256 } from "./util.js";

const alice = { username: "alice", password: "wonderland" };
const clients: RegistryClient[] = [];
let tmp: string;

function newClient(options: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({
    credentials: async () => undefined,
    retry: { attempts: 2, minDelayMs: 5 },
    ...options,
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "seekable-auth-"));
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await rm(tmp, { recursive: true, force: true });
});

describe("Basic auth (htpasswd)", () => {
  let registry: RunningRegistry;
  const ref = (s: string) => parseReference(`${registry.host}/${s}`);

  beforeAll(async () => {
    registry = await startRegistry({ users: [alice] });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("works with good credentials", async () => {
    const client = newClient({ credentials: alice });
    const img = await pushImage(client, ref("basic/x:v1"), bytes(3000, 1));
    expect((await getManifest(client, ref("basic/x:v1"))).digest).toBe(img.manifestDigest);
    expect(Buffer.from(await fetchBlob(client, ref("basic/x"), img.layerDigest))).toEqual(
      img.layer,
    );
  });

  it("gives a clear 401 error for bad credentials", async () => {
    const err = await getManifest(
      newClient({ credentials: { username: "alice", password: "nope" } }),
      ref("basic/x:v1"),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("unauthorized");
    expect(err.status).toBe(401);
    expect(err.message).toBe(
      `${registry.host}/basic/x:v1: unauthorized: authentication required (credentials for ${registry.host} rejected)`,
    );
  });

  it("says when no credentials were found", async () => {
    await expect(getManifest(newClient(), ref("basic/x:v1"))).rejects.toThrow(
      `${registry.host}/basic/x:v1: unauthorized: authentication required (no credentials for ${registry.host})`,
    );
  });

  it("reads credentials from a docker config.json (auths, base64)", async () => {
    const dir = join(tmp, "docker-auths");
    await rm(dir, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(dir));
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        auths: {
          [`http://${registry.host}/v2/`]: {
            auth: Buffer.from("alice:wonderland").toString("base64"),
          },
        },
      }),
    );
    const client = newClient({ credentials: dockerConfigCredentials({ configDir: dir }) });
    await expect(getManifest(client, ref("basic/x:v1"))).resolves.toMatchObject({
      mediaType: expect.any(String),
    });
  });

  it("runs a docker-credential helper named in credHelpers", async () => {
    const dir = join(tmp, "docker-helpers");
    const bin = join(dir, "bin");
    await import("node:fs/promises").then((fs) => fs.mkdir(bin, { recursive: true }));
    const helper = join(bin, "docker-credential-seekabletest");
    await writeFile(
      helper,
      `#!/bin/sh\nread server\nif [ "$server" = "${registry.host}" ]; then\n  echo '{"ServerURL":"'"$server"'","Username":"alice","Secret":"wonderland"}'\nelse\n  echo "credentials not found in native keychain"; exit 1\nfi\n`,
    );
    await chmod(helper, 0o755);
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({ credHelpers: { [registry.host]: "seekabletest" } }),
    );
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const client = newClient({ credentials: dockerConfigCredentials({ configDir: dir, env }) });
    await expect(getManifest(client, ref("basic/x:v1"))).resolves.toBeDefined();
    expect(await runCredentialHelper("seekabletest", "other.example", env)).toBeUndefined();
    await expect(runCredentialHelper("does-not-exist-xyz", "x", env)).rejects.toThrow(
      /docker-credential-does-not-exist-xyz: cannot run/,
    );
  });

  it("parses --creds user:pass", () => {
    expect(parseCredentials("bob:p:a:ss")).toEqual({ username: "bob", password: "p:a:ss" });
    expect(() => parseCredentials("bob")).toThrow(/USER:PASSWORD/);
  });
});

describe("Bearer token auth", () => {
  let registry: RunningRegistry;
  let tokens: TokenServer;
  let observer: FaultProxy;
  const ref = (s: string) => parseReference(`${observer.host}/${s}`);
  const layer = bytes(500_000, 2);
  let layerDigest: string;

  beforeAll(async () => {
    tokens = await startTokenServer(tmp, { alice: alice.password });
    registry = await startRegistry({
      token: {
        realm: tokens.realm,
        service: tokens.service,
        issuer: tokens.issuer,
        rootCertBundle: tokens.certPath,
      },
    });
    // Forwards untouched; its log shows which requests the registry answered 401.
    observer = await startFaultProxy(registry.url);
    layerDigest = (await pushImage(newClient({ credentials: alice }), ref("tok/x:v1"), layer))
      .layerDigest;
  });
  afterAll(async () => {
    await observer?.close();
    await registry?.stop();
    await tokens?.close();
  });

  it("pulls anonymously with a token for the pull scope, cached across requests", async () => {
    tokens.log.length = 0;
    const client = newClient();
    await getManifest(client, ref("tok/x:v1"));
    const source = await RegistryBlobSource.open(client, ref("tok/x"), layerDigest, {
      maxRangesPerRequest: 1,
    });
    const ranges = Array.from({ length: 40 }, (_, i) => ({ offset: i * 12_000, length: 100 }));
    const got = await source.read(ranges);
    for (const [i, r] of ranges.entries()) {
      expect(Buffer.from(got[i] as Uint8Array)).toEqual(
        layer.subarray(r.offset, r.offset + r.length),
      );
    }
    expect(tokens.log).toEqual([
      { service: tokens.service, scopes: ["repository:tok/x:pull"], user: undefined, status: 200 },
    ]);
    expect(client.auth.tokenRequests).toBe(1);
  });

  it("uses a separate token per scope and sends credentials to the token server", async () => {
    tokens.log.length = 0;
    const client = newClient({ credentials: alice });
    const data = bytes(1000, 3);
    await pushBlob(client, ref("tok/y"), { digest: sha256(data), size: data.length }, data);
    await getManifest(client, ref("tok/x:v1"));
    expect(tokens.log.map((l) => [l.user, l.scopes.join(" ")])).toEqual([
      ["alice", "repository:tok/y:pull"], // HEAD: the existence check only needs pull
      ["alice", "repository:tok/y:pull,push"],
      ["alice", "repository:tok/x:pull"],
    ]);
  });

  it("refreshes a token the registry rejects", async () => {
    const client = newClient();
    await getManifest(client, ref("tok/x:v1"));
    expect(client.auth.tokenRequests).toBe(1);
    // The registry is known to want tokens now: the next scope's token is fetched before
    // sending, and this one is bad.
    tokens.expireNext = true;
    observer.log.length = 0;
    expect(await headManifest(client, ref("tok/other:none"))).toBeUndefined();
    expect(observer.log.map((e) => e.status)).toEqual([401, 404]);
    expect(client.auth.tokenRequests).toBe(3);
  });

  it("fetches a new token when the cached one expires", async () => {
    const client = newClient();
    tokens.expiresIn = 1;
    try {
      await getManifest(client, ref("tok/x:v1"));
      await new Promise((r) => setTimeout(r, 700));
      observer.log.length = 0;
      await getManifest(client, ref("tok/x:v1"));
      expect(client.auth.tokenRequests).toBe(2);
      expect(observer.log.map((e) => e.status)).toEqual([200]); // renewed before sending, no 401
    } finally {
      tokens.expiresIn = 300;
    }
  });

  it("reports insufficient scope when an anonymous client pushes", async () => {
    const data = bytes(100, 4);
    const err = await pushBlob(
      newClient(),
      ref("tok/z"),
      { digest: sha256(data), size: 100 },
      data,
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("unauthorized");
    expect(err.message).toMatch(
      /^127\.0\.0\.1:\d+\/tok\/z@sha256:[0-9a-f]{64}: unauthorized: .*\(insufficient scope for repository:tok\/z:pull,push\)$/,
    );
  });

  it("reports credentials the token server rejects", async () => {
    const err = await getManifest(
      newClient({ credentials: { username: "alice", password: "bad" } }),
      ref("tok/x:v1"),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.kind).toBe("unauthorized");
    expect(err.message).toBe(
      `${observer.host}/tok/x:v1: token request failed: unauthorized: invalid username or password (credentials rejected)`,
    );
  });
});
