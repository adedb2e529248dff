// The one concurrency limiter: it bounds requests per read, layers converted at once, and so
// memory. Timing is injected (gates resolved by the test), never measured.
import { describe, expect, it } from "vitest";
import { limiter } from "../src/index.js";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Counts tasks running at once (a wrapper adds a microtask turn: see the first test). */
function tracker() {
  const t = {
    running: 0,
    max: 0,
    run(body: () => Promise<void>): () => Promise<void> {
      return async () => {
        t.running++;
        t.max = Math.max(t.max, t.running);
        try {
          await body();
        } finally {
          t.running--;
        }
      };
    },
  };
  return t;
}

describe("limiter", () => {
  it("limiter(1) never runs a newcomer beside the waiter it just woke", async () => {
    const limit = limiter(1);
    const t = tracker();
    const a = deferred();
    const b = deferred();
    const c = deferred();
    // The first task is the bare promise, so the newcomer below is queued right behind the
    // limiter's own continuation (a wrapper would add a turn and close the window).
    const first = limit(() => a.promise);
    const second = limit(t.run(() => b.promise));
    // Arrives in the same microtask turn as the first task's end, after its slot is released
    // but before the woken waiter resumes: the window the old limiter left open.
    const third = a.promise.then(() => limit(t.run(() => c.promise)));
    a.resolve();
    await new Promise((r) => setImmediate(r));
    expect(t.max).toBe(1);
    b.resolve();
    c.resolve();
    await Promise.all([first, second, third]);
    expect(t.max).toBe(1);
    expect(t.running).toBe(0);
  });

  it("keeps n in flight with out-of-order completions and newcomers, FIFO, errors passed on", async () => {
    for (const n of [1, 2, 3]) {
      const limit = limiter(n);
      const gates = Array.from({ length: 60 }, deferred);
      // What each started task returns: the promise the limiter awaits.
      const running = new Map<number, Promise<void>>();
      let max = 0;
      const started: number[] = [];
      const results: Promise<unknown>[] = [];
      const submit = (i: number) => {
        const p = limit(() => {
          started.push(i);
          const done = (gates[i] as ReturnType<typeof deferred>).promise.then(() => {
            running.delete(i);
            if (i % 7 === 3) throw new Error(`task ${i}`);
          });
          running.set(i, done);
          max = Math.max(max, running.size);
          return done;
        });
        results.push(p.catch((e: Error) => e.message));
      };
      for (let i = 0; i < 20; i++) submit(i);
      await new Promise((r) => setImmediate(r));
      let next = 20;
      for (let round = 0; running.size > 0; round++) {
        // Finish a running task chosen out of start order; a newcomer arrives in the same
        // microtask turn (right behind the limiter's continuation).
        const ids = [...running.keys()];
        const i = ids[(round * 5) % ids.length] as number;
        const done = running.get(i) as Promise<void>;
        if (next < 60) {
          const k = next++;
          void done.then(
            () => submit(k),
            () => submit(k),
          );
        }
        gates[i]?.resolve();
        await new Promise((r) => setImmediate(r));
        expect(running.size).toBeLessThanOrEqual(n);
      }
      const out = await Promise.all(results);
      expect(max).toBe(n);
      expect(started).toHaveLength(60);
      expect(out.filter((x) => typeof x === "string")).toHaveLength(
        Array.from({ length: 60 }, (_, i) => i).filter((i) => i % 7 === 3).length,
      );
      // Waiters start in arrival order.
      expect(started).toEqual(Array.from({ length: 60 }, (_, i) => i));
    }
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => limiter(0)).toThrow(/positive integer/);
    expect(() => limiter(Number.NaN)).toThrow(/positive integer/);
  });
});
