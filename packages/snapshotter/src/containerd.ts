import { type Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CALL_TIMEOUT } from "./grpc-code.js";
import { service } from "./proto.js";

/** The header containerd reads the namespace from, and the lease a request works under. */
const NAMESPACE_HEADER = "containerd-namespace";
const LEASE_HEADER = "containerd-lease";

type Callback = (err: ServiceError | null, res: unknown) => void;
type UnaryMethod = (req: unknown, md: Metadata, opts: { deadline: number }, cb: Callback) => void;

/** A gRPC client of one containerd service, in a namespace and optionally a lease. */
export class ContainerdService {
  readonly client: Client;

  constructor(
    socket: string,
    name: string,
    private readonly md: () => Metadata,
  ) {
    const Ctor = service(name);
    this.client = new Ctor(`unix:${socket}`, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 16 << 20,
    });
  }

  call<T>(method: string, req: unknown, timeoutMs = CALL_TIMEOUT): Promise<T> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method];
    const deadline = Date.now() + timeoutMs;
    return new Promise<T>((res, rej) =>
      fn.call(this.client, req, this.md(), { deadline }, (err, r) =>
        err ? rej(err) : res(r as T),
      ),
    );
  }

  metadata(): Metadata {
    return this.md();
  }
}

/** containerd's content, images, leases, snapshots and diff services over one socket. */
export class Containerd {
  lease?: string;
  readonly content: ContainerdService;
  readonly images: ContainerdService;
  readonly leases: ContainerdService;
  readonly snapshots: ContainerdService;
  readonly diff: ContainerdService;

  constructor(socket: string, namespace: string) {
    const md = () => {
      const m = new Metadata();
      m.set(NAMESPACE_HEADER, namespace);
      if (this.lease) m.set(LEASE_HEADER, this.lease);
      return m;
    };
    const s = (name: string) => new ContainerdService(socket, `containerd.services.${name}`, md);
    this.content = s("content.v1.Content");
    this.images = s("images.v1.Images");
    this.leases = s("leases.v1.Leases");
    this.snapshots = s("snapshots.v1.Snapshots");
    this.diff = s("diff.v1.Diff");
  }

  close(): void {
    for (const c of [this.content, this.images, this.leases, this.snapshots, this.diff])
      c.client.close();
  }
}
