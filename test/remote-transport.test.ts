// The transport a blob URL names is the one used: `https://` is TLS even on loopback, an
// explicit `http://` is not upgraded, and credentials never travel in clear to a host that is
// not loopback unless plain HTTP was asked for. The real registry (Basic auth) sits behind a
// TLS-terminating proxy with a self-signed certificate made by openssl, and behind the fault
// proxy, which logs what arrives over plain HTTP. No traffic leaves 127.0.0.0/8: the
// "non-loopback" name `registry.test` (a reserved TLD) resolves to 127.0.0.1 only through the
// test's own DNS lookup.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { LayerNotFoundError, openImage, openLocation, ReadStats } from "@seekable/reader";
import {
  parseCredentials,
  parseReference,
  pushBlob,
  putManifest,
  RegistryClient,
  RegistryError,
} from "@seekable/registry";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseBlob } from "../packages/cli/src/target.js";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, run } from "./helpers/run.js";

const execFileP = promisify(execFile);
const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const USER = { username: "alice", password: "s3cret" };
const CREDS = `${USER.username}:${USER.password}`;
let registry: RunningRegistry;
let proxy: FaultProxy;
let tls: Server;
let tlsPort: number;
let dir: string;
let cleanup: () => Promise<void>;
let certPath: string;
let blobDigest: string;
let imageRef: string;
const tlsLog: { authorization?: string }[] = [];

beforeAll(async () => {
  registry = await startRegistry({ users: [USER] });
  proxy = await startFaultProxy(registry.url);
  const tmp = await makeTempDir("remote-transport");
  dir = tmp.path;
  cleanup = tmp.remove;

  // One small eStargz layer, converted by seekable.
  await mkdir(join(dir, "root", "etc"), { recursive: true });
  await writeFile(join(dir, "root", "etc", "motd"), "over the right transport\n");
  await execFileP("tar", ["-cf", join(dir, "l.tar"), "-C", join(dir, "root"), "etc"]);
  const conv = await run(process.execPath, [
    seekableCli(),
    "convert",
    join(dir, "l.tar"),
    join(dir, "l.esgz"),
  ]);
  expect(conv.code, describeRun(conv)).toBe(0);
  const blob = await readFile(join(dir, "l.esgz"));
  blobDigest = sha(blob);
  const client = new RegistryClient({ credentials: USER });
  try {
    const repo = parseReference(`${registry.host}/private/app`);
    await pushBlob(client, repo, { digest: blobDigest, size: blob.length }, blob);
    const config = Buffer.from(
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
    );
    await pushBlob(client, repo, { digest: sha(config), size: config.length }, config);
    imageRef = `${registry.host}/private/app:v1`;
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: sha(config),
        size: config.length,
      },
      layers: [
        {
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: blobDigest,
          size: blob.length,
        },
      ],
    };
    await putManifest(
      client,
      parseReference(imageRef),
      Buffer.from(JSON.stringify(manifest)),
      "application/vnd.oci.image.manifest.v1+json",
    );
  } finally {
    await client.close();
  }

  // A TLS front for the registry, with a certificate for 127.0.0.1 that only the child
  // processes given NODE_EXTRA_CA_CERTS trust.
  const keyPath = join(dir, "tls.key");
  certPath = join(dir, "tls.crt");
  await execFileP("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  tls = createHttpsServer(
    { key: await readFile(keyPath), cert: await readFile(certPath) },
    (req, res) => {
      tlsLog.push({ authorization: req.headers.authorization });
      const up = httpRequest(
        {
          host: "127.0.0.1",
          port: registry.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    },
  );
  await new Promise<void>((r) => tls.listen(0, "127.0.0.1", r));
  tlsPort = (tls.address() as AddressInfo).port;
}, 120_000);

afterAll(async () => {
  tls?.closeAllConnections();
  await new Promise((r) => (tls ? tls.close(r) : r(undefined)));
  await proxy?.close();
  await registry?.stop();
  await cleanup?.();
});

const cliEnv = (extra: Record<string, string> = {}) => {
  const e: NodeJS.ProcessEnv = { ...process.env, HOME: dir, ...extra };
  delete e.DOCKER_CONFIG;
  return e;
};
const blobPath = () => `/v2/private/app/blobs/${blobDigest}`;

describe("a blob URL's scheme is its transport", () => {
  it("https:// on loopback is TLS: a plain-HTTP server is never sent the credentials", async () => {
    proxy.log.length = 0;
    const r = await run(
      process.execPath,
      [seekableCli(), "ls", `https://${proxy.host}${blobPath()}`, "--creds", CREDS, "--no-cache"],
      { env: cliEnv(), timeoutMs: 60_000 },
    );
    expect(r.code, describeRun(r)).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines, describeRun(r)).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^seekable: https:\/\/127\.0\.0\.1:\d+\/v2\/.*TLS handshake failed: the server does not speak TLS \(plain HTTP\?\)$/,
    );
    // The TLS handshake is not HTTP: no request (and no Authorization) reached the server.
    expect(proxy.log).toEqual([]);
  });

  it("https:// on loopback reaches a TLS server and reads through it", async () => {
    tlsLog.length = 0;
    const r = await run(
      process.execPath,
      [
        seekableCli(),
        "cat",
        `https://127.0.0.1:${tlsPort}${blobPath()}`,
        "etc/motd",
        "--creds",
        CREDS,
        "--no-cache",
      ],
      { env: cliEnv({ NODE_EXTRA_CA_CERTS: certPath }), timeoutMs: 60_000 },
    );
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toBe("over the right transport\n");
    expect(tlsLog.some((e) => e.authorization?.startsWith("Basic "))).toBe(true);
  });

  describe("http:// to a host that is not loopback", () => {
    // `registry.test` resolves to the fault proxy on 127.0.0.1 for these clients only.
    const agents: Agent[] = [];
    const host = () => `registry.test:${new URL(proxy.url).port}`;
    const url = () => `http://${host()}${blobPath()}`;
    const clientFor = (plainHttp?: boolean | string[]) => {
      const agent = new Agent({
        connect: {
          lookup: ((
            name: string,
            options: { all?: boolean },
            cb: (e: Error | null, a?: unknown, f?: number) => void,
          ) => {
            if (name !== "registry.test") return cb(new Error(`unexpected lookup of ${name}`));
            if (options.all) cb(null, [{ address: "127.0.0.1", family: 4 }]);
            else cb(null, "127.0.0.1", 4);
          }) as never,
        },
      });
      agents.push(agent);
      return new RegistryClient({ credentials: USER, plainHttp, dispatcher: agent });
    };
    afterAll(async () => {
      for (const a of agents) await a.close();
    });

    it("is not upgraded to HTTPS, and the credentials are withheld", async () => {
      proxy.log.length = 0;
      const client = clientFor();
      const err = await openLocation(parseBlob(url()), {
        client: () => client,
        stats: new ReadStats(),
      }).catch((e: unknown) => e);
      await client.close();
      // Plain HTTP reached the server (no TLS handshake), anonymously: a 401, said clearly.
      expect(proxy.log.length).toBeGreaterThan(0);
      expect(proxy.log.every((e) => e.authorization === undefined)).toBe(true);
      expect(err).toBeInstanceOf(RegistryError);
      const e = err as RegistryError;
      expect(e.code).toBe("CREDENTIALS_WITHHELD");
      expect(e.kind).toBe("unauthorized");
      expect(e.message).toMatch(
        /^registry\.test:\d+\/private\/app@sha256:[0-9a-f]{64}: .*\(credentials not sent over plain HTTP to a host that is not loopback\)$/,
      );
      expect(e.message).not.toMatch(/--/);
    });

    it("sends the credentials when plain HTTP was asked for explicitly", async () => {
      for (const plainHttp of [true, [host()]]) {
        proxy.log.length = 0;
        const client = clientFor(plainHttp);
        const target = await openLocation(parseBlob(url()), {
          client: () => client,
          stats: new ReadStats(),
        });
        try {
          expect(Buffer.from(await target.fs.read("etc/motd")).toString()).toBe(
            "over the right transport\n",
          );
        } finally {
          await target.close();
          await client.close();
        }
        expect(proxy.log.some((e) => e.authorization?.startsWith("Basic "))).toBe(true);
      }
    });
  });
});

describe("library errors do not name CLI flags", () => {
  it("a layer index out of range is a typed error; the CLI words it with --layer", async () => {
    const client = new RegistryClient({ credentials: USER });
    const err = await openImage(
      { reference: parseReference(imageRef), layer: "5" },
      { client: () => client, stats: new ReadStats() },
    ).catch((e: unknown) => e);
    await client.close();
    expect(err).toBeInstanceOf(LayerNotFoundError);
    const e = err as LayerNotFoundError;
    expect([e.layer, e.layerCount]).toEqual(["5", 1]);
    expect(e.message).toBe("layer 5 is not in the image: it has 1 layers (0 is the bottom)");
    const r = await run(
      process.execPath,
      [seekableCli(), "ls", `docker://${imageRef}`, "--layer", "5", "--creds", CREDS, "--no-cache"],
      { env: cliEnv(), timeoutMs: 60_000 },
    );
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim()).toBe(
      `seekable: docker://${imageRef}: --layer 5: the image has 1 layers (0 is the bottom)`,
    );
  });

  it("bad --creds text: the library says 'credentials', the CLI says '--creds', never the text", async () => {
    const err = (() => {
      try {
        parseCredentials("tokenwithoutcolon");
      } catch (e) {
        return e as RegistryError;
      }
    })();
    expect(err?.code).toBe("BAD_CREDENTIALS");
    expect(err?.message).toBe("credentials: expected USER:PASSWORD");
    const r = await run(
      process.execPath,
      [
        seekableCli(),
        "ls",
        `http://${registry.host}${blobPath()}`,
        "--creds",
        "tokenwithoutcolon",
        "--no-cache",
      ],
      { env: cliEnv(), timeoutMs: 60_000 },
    );
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim()).toBe("seekable: --creds: expected USER:PASSWORD");
  });
});
