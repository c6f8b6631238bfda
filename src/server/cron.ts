import { Cron } from 'croner';
import type { Clock } from '../clock.js';
import type { CronSpec, LambdaConfig } from '../core/lambda.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { isUnavailable } from '../store/store-error.js';
import type { SingletonDuty } from './singleton.js';

export type CronSubmit = (task: { lambda: string; payload: unknown; runAt: number; idempotencyKey: string }) => Promise<void>;

/**
 * Periodic tasks: for every lambda with a cron schedule, the holder of the cron duty creates
 * the next occurrence ahead of time (runAt = the occurrence), with the idempotency key
 * `cron:<lambda>:<epoch ms>`, so an occurrence exists once however many servers race or
 * restart. After downtime only the latest missed occurrence runs, not every one missed; a
 * paused lambda counts as down (its occurrences would otherwise pile up under the gate, one a
 * minute for an every-minute schedule, and all run at the resume).
 */
export class CronRole {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;

  constructor(
    private readonly store: Store,
    private readonly duty: SingletonDuty,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly lambdas: () => LambdaConfig[],
    /** Whether the lambda's gate holds its tasks (pause); a dropping gate drops each occurrence. */
    private readonly paused: (lambda: string) => boolean,
    private readonly submit: CronSubmit,
    private readonly opts: { intervalMs: number; lookaheadMs: number },
  ) {}

  start(): void {
    this.stopped = false;
    // The next tick is timed from the end of this one: a slow tick (a store that answers late)
    // never runs beside the next, and one that ends after stop() sets no timer.
    const loop = () => {
      this.running = this.tick()
        .then(() => undefined)
        .catch((err) => this.log.warn({ err }, 'cron tick failed'))
        .finally(() => {
          this.running = null;
          if (this.stopped) return;
          this.timer = setTimeout(loop, this.opts.intervalMs);
          this.timer.unref?.();
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Creates every occurrence due within the lookahead. Exposed for tests with a pinned clock. */
  async tick(): Promise<number> {
    const crons = this.lambdas().filter((l) => l.cron !== null);
    if (crons.length === 0 || !(await this.duty.held())) return 0;
    let created = 0;
    const now = this.clock.now();
    for (const l of crons) {
      if (this.paused(l.name)) continue;
      const spec = l.cron as CronSpec;
      try {
        const last = await this.store.read((o) => o.q.cronGet(l.name));
        for (const at of occurrences(spec, last, now, this.opts.lookaheadMs)) {
          await this.submit({ lambda: l.name, payload: spec.payload ?? {}, runAt: at, idempotencyKey: `cron:${l.name}:${at}` });
          await this.store.transaction((o) => o.q.cronSet(l.name, at));
          created++;
        }
      } catch (err) {
        // One lambda's occurrence the submit refuses (a payload over maxPayloadBytes, one JSON
        // cannot hold) must not hold back the lambdas after it; a store that is away fails the
        // whole tick.
        if (isUnavailable(err)) throw err;
        this.log.warn({ err, lambda: l.name }, `cron: the occurrence of ${l.name} was refused; the next tick tries again`);
      }
    }
    return created;
  }
}

/**
 * Occurrences to create: those after `last` up to now + lookahead; of those already past,
 * only the latest (a server that was down does not replay a backlog of runs).
 */
export function occurrences(spec: CronSpec, last: number | null, now: number, lookaheadMs: number): number[] {
  const cron = new Cron(spec.pattern, { timezone: spec.timezone, paused: true });
  const out: number[] = [];
  if (last !== null && last < now) {
    // Found backwards from now, however long ago (a weekly run missed by days still runs) and
    // without walking every minute since `last`. croner counts a run in the reference's own
    // second as before it, so a run at exactly now is found from now + 1.
    const latest = cron.previousRuns(1, new Date(now + 1))[0]?.getTime();
    if (latest !== undefined && latest > last) out.push(latest);
  }
  let from = new Date(Math.max(last ?? now, now));
  for (let guard = 0; guard < 200_000; guard++) {
    const next = cron.nextRun(from);
    if (!next) break;
    const at = next.getTime();
    if (at > now + lookaheadMs) break;
    out.push(at);
    from = next;
  }
  return out;
}

/** Throws a TypeError naming the lambda when its cron pattern or time zone is invalid. */
export function checkCron(lambda: string, spec: CronSpec): void {
  try {
    new Cron(spec.pattern, { timezone: spec.timezone, paused: true }).nextRun();
  } catch (err) {
    throw new TypeError(`lambda "${lambda}": invalid cron ${JSON.stringify(spec.pattern)} (${(err as Error).message})`);
  }
}
