// Lambdas for the quick start (`npm start` runs them). A lambda is a plain object with a
// name and a handler; its other fields are defaults for its tasks.

/** Says hello: `conveyor submit greet '{"name":"Ada"}'`. */
export const greet = {
  name: 'greet',
  async handler(payload, ctx) {
    ctx.log.info(`greeting ${payload?.name ?? 'world'}`);
    return { greeting: `Hello, ${payload?.name ?? 'world'}!` };
  },
};

/** Waits `ms` milliseconds, stopping early if the attempt is aborted (timeout, lost lease, shutdown). */
export const sleep = {
  name: 'sleep',
  timeoutMs: 60_000,
  async handler(payload, ctx) {
    const ms = Number(payload?.ms ?? 1000);
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(ctx.signal.reason);
      });
    });
    return { slept: ms };
  },
};

/** Fails the first attempts, then succeeds: watch the retries with `conveyor get ID`. */
export const flaky = {
  name: 'flaky',
  maxAttempts: 5,
  backoff: { baseMs: 500 },
  async handler(payload, ctx) {
    const failures = Number(payload?.failures ?? 2);
    if (ctx.task.tries <= failures) throw new Error(`planned failure ${ctx.task.tries} of ${failures}`);
    return { succeededOnTry: ctx.task.tries };
  },
};
