/** Network counters for `--stats`: HTTP requests sent (retries included) and body bytes received. */
export interface RegistryStats {
  requests: number;
  bytesFetched: number;
}

export function newStats(): RegistryStats {
  return { requests: 0, bytesFetched: 0 };
}

export function countRequest(sinks: readonly (RegistryStats | undefined)[]): void {
  for (const s of sinks) if (s) s.requests++;
}

export function countBytes(sinks: readonly (RegistryStats | undefined)[], n: number): void {
  for (const s of sinks) if (s) s.bytesFetched += n;
}
