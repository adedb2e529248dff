// A containerd of the test's own (Debian's 1.6): its own root, state and sockets under a
// temporary directory, never the system's; runc as the runtime; `seekable` as a proxy
// snapshotter; optionally the CRI plugin with snapshot annotations on and plain HTTP to
// loopback registries. Started, restarted, stopped by the tests.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { containerdConfig } from "@seekable/snapshotter";
import { type RunResult, run } from "./run.js";

export interface Containerd {
  readonly dir: string;
  readonly socket: string;
  /** `ctr -a SOCKET -n NAMESPACE ARGS...` */
  ctr(namespace: string, ...args: string[]): Promise<RunResult>;
  /** `ctr run --rm --snapshotter seekable` with runc: `cmd` in a new container of `image`. */
  run(namespace: string, image: string, id: string, ...cmd: string[]): Promise<RunResult>;
  logs(): string;
  /** SIGTERM (SIGKILL after 20 s), then the same configuration started again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** The snapshotter's socket, loaded as proxy plugin `seekable`. */
  snapshotter: string;
  /** With the CRI plugin (snapshotter seekable, disable_snapshot_annotations = false). */
  cri?: boolean;
}

export async function startContainerd(dir: string, o: ContainerdOptions): Promise<Containerd> {
  await mkdir(join(dir, "certs.d"), { recursive: true });
  const file = join(dir, "config.toml");
  await writeFile(file, containerdConfig({ dir, snapshotter: o.snapshotter, cri: o.cri }));
  const socket = join(dir, "containerd.sock");
  let proc: ChildProcess | undefined;
  let logs = "";
  const start = async () => {
    const p = spawn("containerd", ["--config", file], { stdio: ["ignore", "ignore", "pipe"] });
    proc = p;
    p.stderr?.setEncoding("utf8").on("data", (d: string) => {
      logs = (logs + d).slice(-400_000);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null)
        throw new Error(`containerd exited ${p.exitCode}: ${logs.slice(-3000)}`);
      if (existsSync(socket)) {
        const r = await run("ctr", ["-a", socket, "version"], { timeoutMs: 10_000 });
        if (r.code === 0) return;
      }
      if (Date.now() > deadline)
        throw new Error(`containerd did not answer in 30 s: ${logs.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(t);
  };
  await start();
  return {
    dir,
    socket,
    ctr: (namespace, ...args) =>
      run("ctr", ["-a", socket, "-n", namespace, ...args], { timeoutMs: 180_000 }),
    run: (namespace, image, id, ...cmd) =>
      run(
        "ctr",
        ["-a", socket, "-n", namespace, "run", "--rm", "--snapshotter", "seekable"].concat([
          "--runtime",
          "io.containerd.runc.v2",
          image,
          id,
          ...cmd,
        ]),
        { timeoutMs: 180_000 },
      ),
    logs: () => logs,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
  };
}
