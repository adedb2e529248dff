import { join } from "node:path";

export interface ContainerdConfigOptions {
  /** containerd's own directory: root/, state/ and its sockets go under it. */
  dir: string;
  /** The snapshotter's socket, loaded as proxy plugin `name`. */
  snapshotter: string;
  name?: string;
  /**
   * With the CRI plugin: `snapshotter = name`, `disable_snapshot_annotations = false` (so
   * Prepare carries the image reference and layer digest), runc without systemd cgroups, and an
   * empty hosts directory (loopback registries over plain HTTP). Without it, CRI is disabled.
   */
  cri?: boolean;
}

/**
 * A containerd 1.6 `config.toml` (version 2) with `seekable snapshotter` as a proxy plugin,
 * everything (root, state, sockets) under one directory: what the tests and benchmarks start,
 * and the README's example.
 */
export function containerdConfig(o: ContainerdConfigOptions): string {
  const name = o.name ?? "seekable";
  const lines = [
    "version = 2",
    ...(o.cri ? [] : ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']),
    `root = "${join(o.dir, "root")}"`,
    `state = "${join(o.dir, "state")}"`,
    "[grpc]",
    `  address = "${join(o.dir, "containerd.sock")}"`,
    "[ttrpc]",
    `  address = "${join(o.dir, "containerd.sock.ttrpc")}"`,
    "[debug]",
    `  address = "${join(o.dir, "debug.sock")}"`,
    `[proxy_plugins.${name}]`,
    '  type = "snapshot"',
    `  address = "${o.snapshotter}"`,
  ];
  if (o.cri) {
    lines.push(
      '[plugins."io.containerd.grpc.v1.cri".containerd]',
      `  snapshotter = "${name}"`,
      "  disable_snapshot_annotations = false",
      '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '  runtime_type = "io.containerd.runc.v2"',
      '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      "  SystemdCgroup = false",
      '[plugins."io.containerd.grpc.v1.cri".registry]',
      `  config_path = "${join(o.dir, "certs.d")}"`,
    );
  }
  return `${lines.join("\n")}\n`;
}
