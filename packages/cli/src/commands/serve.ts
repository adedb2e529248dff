import { LayoutServer, OciLayout } from "@seekable/image";
import { CliError } from "../errors.js";

export interface ServeFlags {
  port?: number;
  host?: string;
  json?: boolean;
}

/** Serves an OCI layout read-only until SIGINT/SIGTERM. */
export async function serveCommand(target: string, flags: ServeFlags): Promise<void> {
  if (!target.startsWith("oci:")) throw new CliError(`${target}: expected oci:DIR`, true);
  const dir = target.slice(4).replace(/:[^/:]+$/, "");
  const layout = await OciLayout.open(dir);
  await layout.index();
  const server = new LayoutServer(layout);
  const addr = await server.listen(flags.port ?? 0, flags.host ?? "127.0.0.1");
  if (flags.json)
    process.stdout.write(`${JSON.stringify({ address: addr, url: `http://${addr}` })}\n`);
  else process.stdout.write(`serving ${target} at http://${addr} (Ctrl-C to stop)\n`);
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve());
  });
  await server.close();
}
