// Credentials end to end: the real registry with htpasswd Basic auth, read by the CLI with
// --creds and with a Docker config file.
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseReference, pushBlob, putManifest, RegistryClient } from "@seekable/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/files.js";
import { seekableCli } from "./helpers/paths.js";
import { type RunningRegistry, startRegistry } from "./helpers/registry.js";
import { describeRun, run } from "./helpers/run.js";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const USER = { username: "alice", password: "s3cret:with:colons" };
let registry: RunningRegistry;
let dir: string;
let cleanup: () => Promise<void>;
let ref: string;

beforeAll(async () => {
  registry = await startRegistry({ users: [USER] });
  const tmp = await makeTempDir("remote-auth");
  dir = tmp.path;
  cleanup = tmp.remove;
  // A one-file layer converted by seekable.
  const tarPath = join(dir, "l.tar");
  const { execFileSync } = await import("node:child_process");
  await mkdir(join(dir, "root", "etc"), { recursive: true });
  await writeFile(join(dir, "root", "etc", "motd"), "hello from a private registry\n");
  execFileSync("tar", ["-cf", tarPath, "-C", join(dir, "root"), "etc"]);
  const blobPath = join(dir, "l.esgz");
  const conv = await run(process.execPath, [seekableCli(), "convert", tarPath, blobPath, "--json"]);
  expect(conv.code, describeRun(conv)).toBe(0);
  const { tocDigest } = JSON.parse(conv.stdout.toString());
  const { readFile } = await import("node:fs/promises");
  const blob = await readFile(blobPath);
  const config = Buffer.from(
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
  );
  const client = new RegistryClient({ credentials: USER });
  const repo = { registry: registry.host, repository: "private/app" };
  try {
    await pushBlob(client, repo, { digest: sha(blob), size: blob.length }, blob);
    await pushBlob(client, repo, { digest: sha(config), size: config.length }, config);
    ref = `${registry.host}/private/app:v1`;
    const manifest = JSON.stringify({
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
          digest: sha(blob),
          size: blob.length,
          annotations: { "containerd.io/snapshot/stargz/toc.digest": tocDigest },
        },
      ],
    });
    await putManifest(
      client,
      parseReference(ref),
      Buffer.from(manifest),
      "application/vnd.oci.image.manifest.v1+json",
    );
  } finally {
    await client.close();
  }
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await cleanup?.();
});

const env = (extra: Record<string, string>) => {
  const e = { ...process.env, ...extra };
  delete e.DOCKER_CONFIG;
  return { ...e, ...extra };
};

describe("reading from a registry that needs credentials", () => {
  it("reads with --creds user:pass", async () => {
    const r = await run(
      process.execPath,
      [
        seekableCli(),
        "cat",
        `docker://${ref}`,
        "etc/motd",
        "--creds",
        `${USER.username}:${USER.password}`,
        "--no-cache",
      ],
      { env: env({ HOME: dir }) },
    );
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toBe("hello from a private registry\n");
  });

  it("reads with credentials from $DOCKER_CONFIG/config.json", async () => {
    const cfgDir = join(dir, "docker");
    await mkdir(cfgDir, { recursive: true });
    const auth = Buffer.from(`${USER.username}:${USER.password}`).toString("base64");
    await writeFile(
      join(cfgDir, "config.json"),
      JSON.stringify({ auths: { [registry.host]: { auth } } }),
    );
    const r = await run(
      process.execPath,
      [seekableCli(), "cat", `docker://${ref}`, "etc/motd", "--no-cache"],
      {
        env: env({ HOME: dir, DOCKER_CONFIG: cfgDir }),
      },
    );
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.toString()).toBe("hello from a private registry\n");
  });

  it("fails with one clear line without credentials or with wrong ones", async () => {
    for (const extra of [[], ["--creds", "alice:wrong"]]) {
      const r = await run(
        process.execPath,
        [seekableCli(), "ls", `docker://${ref}`, "--no-cache", ...extra],
        {
          env: env({ HOME: dir }),
        },
      );
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines, describeRun(r)).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^seekable: .*(401|unauthorized|denied|credentials|authentication)/i,
      );
    }
  });
});
