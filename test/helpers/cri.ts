// A CRI client of the tests' own (no crictl in Debian): runtime.v1.ImageService/PullImage
// over containerd's socket, as the kubelet calls it.
import { fileURLToPath } from "node:url";
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const PROTO = fileURLToPath(new URL("./cri-api.proto", import.meta.url));

/** Pulls `image` through containerd's CRI plugin; the image ref (digest) it answers. */
export async function criPullImage(socket: string, image: string): Promise<string> {
  const api = loadPackageDefinition(loadSync(PROTO, { keepCase: true })) as unknown as {
    runtime: { v1: { ImageService: ServiceClientConstructor } };
  };
  const client = new api.runtime.v1.ImageService(`unix:${socket}`, credentials.createInsecure());
  try {
    return await new Promise<string>((res, rej) =>
      (
        client as unknown as {
          PullImage(
            req: unknown,
            opts: { deadline: number },
            cb: (e: Error | null, r: { image_ref: string }) => void,
          ): void;
        }
      ).PullImage({ image: { image } }, { deadline: Date.now() + 180_000 }, (e, r) =>
        e ? rej(e) : res(r.image_ref),
      ),
    );
  } finally {
    client.close();
  }
}
