/** Runs a task when a slot is free. */
export type Limit = <T>(task: () => Promise<T>) => Promise<T>;

/**
 * Runs at most `n` tasks at once; the rest wait in FIFO order. A finishing task hands its
 * slot straight to the first waiter instead of freeing it: freeing it would let a newcomer
 * arriving before the woken waiter resumes take the slot too, and run n + 1 tasks.
 */
export function limiter(n: number): Limit {
  if (!(Number.isSafeInteger(n) && n >= 1)) {
    throw new RangeError(`limiter: concurrency must be a positive integer, got ${n}`);
  }
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < n) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      release();
    }
  };
}
