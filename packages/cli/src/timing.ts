/**
 * SEEKABLE_TIMING=1: the start-up path's performance marks (ms since the process' time
 * origin), printed on stderr as one `seekable-timing {"origin":EPOCH_MS,"marks":[[name,ms],…]}`
 * line, for bench/mount-ready.mjs.
 */
export function printTiming(now: string): void {
  if (!process.env.SEEKABLE_TIMING) return;
  const marks: [string, number][] = [
    ["node: bootstrap complete", performance.nodeTiming.bootstrapComplete],
  ];
  for (const m of performance.getEntriesByType("mark")) marks.push([m.name, m.startTime]);
  marks.push([now, performance.now()]);
  const rounded = marks.map(([n, t]) => [n, Math.round(t * 10) / 10]);
  const cpu = process.cpuUsage();
  const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
  process.stderr.write(
    `seekable-timing ${JSON.stringify({ origin: performance.timeOrigin, cpuMs, marks: rounded })}\n`,
  );
}
