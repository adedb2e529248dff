import { fileURLToPath } from "node:url";
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

/** The CRI's PullImage, vendored (Debian packages neither crictl nor k8s.io/cri-api). */
const PROTO = fileURLToPath(new URL("../proto/k8s.io/cri-api/api.proto", import.meta.url));

type PullImage = (
  req: unknown,
  opts: { deadline: number },
  cb: (e: Error | null, r: { image_ref: string }) => void,
) => void;

/**
 * Pulls `image` through containerd's CRI plugin on `socket`, as the kubelet does
 * (runtime.v1.ImageService/PullImage); the image ref (digest) it answers. For tests and
 * benchmarks of the CRI path.
 */
export async function criPullImage(
  socket: string,
  image: string,
  timeoutMs = 180_000,
): Promise<string> {
  const api = loadPackageDefinition(loadSync(PROTO, { keepCase: true })) as unknown as {
    runtime: { v1: { ImageService: ServiceClientConstructor } };
  };
  const client = new api.runtime.v1.ImageService(`unix:${socket}`, credentials.createInsecure());
  try {
    const pull = (client as unknown as { PullImage: PullImage }).PullImage.bind(client);
    return await new Promise<string>((res, rej) =>
      pull({ image: { image } }, { deadline: Date.now() + timeoutMs }, (e, r) =>
        e ? rej(e) : res(r.image_ref),
      ),
    );
  } finally {
    client.close();
  }
}
