// What the containerd snapshotter tests share: the python image converted to eStargz (and its
// app layer as plain gzip), pushed to the real registry behind a fault proxy that counts the
// bytes; `seekable snapshotter` and a containerd of their own in a temporary directory on a
// real file system (overlayfs wants one), and the clean-up that leaves no mount behind.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { RegistryClient } from "@seekable/registry";
import { type Containerd, type ContainerdOptions, startContainerd } from "./containerd.js";
import { type ConvertedLayer, convertItems } from "./convert.js";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { type Foreground, startForeground } from "./foreground.js";
import { type PushedLayer, pushImage } from "./push-image.js";
import { pythonImage } from "./python-image.js";
import { type RunningRegistry, startRegistry } from "./registry.js";
import { makeTar, pseudoRandom, sha, type TarItem } from "./tar.js";

const has = (c: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${c}`]);
    return true;
  } catch {
    return false;
  }
};

/** What these tests need; .ci/run installs the Debian packages. Missing is a failure. */
export function missingForSnapshotter(): string[] {
  return [
    process.getuid?.() === 0 ? "" : "root",
    existsSync("/dev/fuse") ? "" : "/dev/fuse",
    existsSync("/bin/busybox") ? "" : "busybox-static (/bin/busybox)",
    existsSync("/usr/bin/python3") ? "" : "python3",
    has("fusermount") ? "" : "fuse3 (fusermount)",
    has("containerd") ? "" : "containerd",
    has("ctr") ? "" : "containerd (ctr)",
    has("runc") ? "" : "runc",
  ].filter((m) => m !== "");
}

/** A file of the app layer nothing reads unless a test does. */
export const BIG = pseudoRandom(3 << 20, 5);

export interface SnapshotterEnv {
  registry: RunningRegistry;
  proxy: FaultProxy;
  work: string;
  /** The snapshotter's --root and --address. */
  root: string;
  sock: string;
  /** base, python, app (with /app/big.bin): eStargz. */
  layers: ConvertedLayer[];
  /** The app layer as plain tar+gzip, with one more file (its own chain ID). */
  plainApp: PushedLayer & { digest: string };
  /** Pushes an image of these layers as REPO:tag; its name through the proxy. */
  push(tag: string, layers: PushedLayer[]): Promise<string>;
  snapshotter?: Foreground;
  containerd?: Containerd;
  startSnapshotter(): Promise<Foreground>;
  /** Bytes of these layers' blobs the registry sent since proxy log entry `from`. */
  layerBytes(from: number, layers: { digest: string }[]): number;
  /** Mount points under the snapshotter's root other than its layer store. */
  mountsUnder(): Promise<string[]>;
  close(): Promise<void>;
}

export async function snapshotterEnv(
  repo: string,
  containerd: Omit<ContainerdOptions, "snapshotter">,
): Promise<SnapshotterEnv> {
  const missing = missingForSnapshotter();
  if (missing.length > 0)
    throw new Error(`cannot test the snapshotter: missing ${missing.join(", ")}`);
  const registry = await startRegistry();
  const proxy = await startFaultProxy(registry.url);
  const work = await mkdtemp(join(tmpdir(), "seekable-snap-"));
  const root = join(work, "root");
  const sock = join(work, "snapshotter.sock");
  const py = pythonImage();
  const app: TarItem[] = [...py.app, { name: "app/big.bin", body: BIG }];
  const layers: ConvertedLayer[] = [];
  for (const [i, items] of [py.base, py.python, app].entries()) {
    layers.push(await convertItems(work, `l${i}`, items));
  }
  const appTar = await makeTar([...app, { name: "app/plain.txt", body: "plain gzip layer\n" }]);
  const appGz = gzipSync(appTar);
  const client = new RegistryClient();
  const env: SnapshotterEnv = {
    registry,
    proxy,
    work,
    root,
    sock,
    layers,
    plainApp: { blob: appGz, digest: sha(appGz), diffId: sha(appTar) },
    push: async (tag, ls) => {
      const name = await pushImage(client, { registry: registry.host, repository: repo }, tag, ls);
      return `${proxy.host}${name.slice(registry.host.length)}`; // named through the proxy
    },
    startSnapshotter: async () => {
      env.snapshotter = await startForeground("snapshotter", [
        "snapshotter",
        "--address",
        sock,
        "--root",
        root,
        "--cache-dir",
        join(work, "cache"),
      ]);
      return env.snapshotter;
    },
    layerBytes: (from, ls) =>
      proxy.log
        .slice(from)
        .filter((e) => ls.some((l) => e.url.endsWith(`/blobs/${l.digest}`)))
        .reduce((n, e) => n + e.bytesSent, 0),
    mountsUnder: async () =>
      (await readFile("/proc/self/mounts", "utf8"))
        .split("\n")
        .map((l) => l.split(" ")[1])
        .filter((m) => m?.startsWith(`${root}/`) && m !== join(root, "store")),
    close: async () => {
      await client.close();
      await env.containerd?.stop();
      const s = env.snapshotter;
      if (s && s.proc.exitCode === null) await s.stop().catch(() => s.proc.kill("SIGKILL"));
      await proxy.close();
      await registry.stop();
      if (process.env.KEEP_TEST_FILES) return;
      for (const m of (await env.mountsUnder()).reverse()) {
        try {
          execFileSync("umount", ["-l", m], { stdio: "ignore" });
        } catch {
          // gone already
        }
      }
      try {
        execFileSync("fusermount", ["-u", "-z", join(root, "store")], { stdio: "ignore" });
      } catch {
        // not mounted
      }
      await rm(work, { recursive: true, force: true });
    },
  };
  await env.startSnapshotter();
  env.containerd = await startContainerd(join(work, "containerd"), {
    ...containerd,
    snapshotter: sock,
  });
  return env;
}
