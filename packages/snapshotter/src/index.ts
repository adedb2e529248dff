export { type ContainerdConfigOptions, containerdConfig } from "./containerd-config.js";
export { criPullImage } from "./cri-client.js";
export { remoteLayer, storePath, TARGET_LABEL } from "./labels.js";
export { type PulledLayer, type PullOptions, type PullResult, pullImage } from "./pull.js";
export { type RunningSnapshotter, type SnapshotterOptions, startSnapshotter } from "./server.js";
