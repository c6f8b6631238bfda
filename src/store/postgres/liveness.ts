import { systemClock } from '../../clock.js';
import { nativeCodeOf, StoreError } from '../store-error.js';

/** A call without an answer for this long makes the driver check that PostgreSQL answers at all. */
export const STALL_CHECK_MS = 2000;
/** While PostgreSQL is found unreachable, it is probed this often; calls fail at once meanwhile. */
export const REPROBE_MS = 1000;
/** A pool whose writes are refused as read-only is replaced at most this often (see guard). */
export const READ_ONLY_REPLACE_MS = 5000;
/** read_only_sql_transaction: a write on a server that takes none. */
const READ_ONLY = '25006';

/**
 * Every call of the PostgreSQL driver settles in bounded time, and a pool whose connections
 * hang is replaced. The case this is for: PostgreSQL stops answering without closing its
 * connections (its host frozen or gone, a network black hole, a managed database failing over
 * to another address). A statement already sent then waits for TCP to give up, about 15
 * minutes on Linux, and holds its pool connection meanwhile; once every connection of the pool
 * hangs that way, nothing gets through even after the database is back. (A database that
 * refuses connections, stopped or restarting, needs none of this: calls fail at once.)
 *
 * Modes: answering -> (a call waits STALL_CHECK_MS: probe) -> answering if the probe got an
 * answer | unreachable if not -> (a probe every REPROBE_MS answers) -> answering.
 *
 * A probe is a trivial query on a connection of its own, made for it (concurrent calls share
 * one). If PostgreSQL answers, even with an error such as too_many_connections, it may only be
 * slow: the call goes on waiting, checked again every STALL_CHECK_MS, until its limit. If it
 * does not answer, the waiting calls fail 'unavailable', the driver replaces its pool, and new
 * calls fail at once (no connection attempt, no 5 s connect timeout each) until a probe gets an
 * answer again. A call that reaches a limit past the server's statement_timeout also replaces
 * the pool: a connection that still has not answered is dead even if the database is not (a
 * failover to a new address: the probe reaches the new server, the pool's connections still
 * wait on the old one). A pool is replaced only if it has answered since it was opened, so
 * one database outage replaces it once.
 *
 * A write refused as read-only (25006) replaces the pool too: after a failover that keeps the
 * address (a managed database moving its DNS name to the new primary), the pool's connections
 * stay open to the old primary, now a standby, and would refuse every write until they close,
 * while a new connection reaches the new primary. At most every READ_ONLY_REPLACE_MS, so a
 * server that stays read-only does not have its pool replaced at every write.
 */
export class Liveness {
  private probing: Promise<boolean> | null = null;
  /** Whether a call has succeeded since the pool was last replaced. */
  private answered = false;
  private unreachable = false;
  private reprobe: NodeJS.Timeout | null = null;
  private closed = false;
  /** When a read-only refusal last replaced the pool. */
  private readOnlyAt = Number.NEGATIVE_INFINITY;

  constructor(
    /** Resolves if PostgreSQL answers on a fresh connection; rejects otherwise (a server error counts as an answer). */
    private readonly probe: () => Promise<void>,
    /**
     * A connection of the pool is dead, or (`readOnly`) answers but refuses writes: replace the
     * pool. Then the old pool's calls in flight may finish: its other connections may write.
     */
    private readonly replacePool: (readOnly: boolean) => void,
    /** The server's statement_timeout: a call with no answer past it has a dead connection. */
    private readonly statementTimeoutMs: number,
  ) {}

  /**
   * Runs `work` and settles with it, or rejects with StoreError 'unavailable': at once while
   * PostgreSQL is known unreachable (without running `work`), when a probe finds it so, or
   * after `limitMs`. A call given up on is left to finish or fail on its own: its caller has
   * been told it may not have happened.
   */
  guard<T>(work: () => Promise<T>, what: string, limitMs: number): Promise<T> {
    if (this.unreachable)
      return Promise.reject(new StoreError('unavailable', `${what}: PostgreSQL does not answer (probing every ${REPROBE_MS} ms)`));
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const settle = (fn: () => void) => {
        if (done) return;
        done = true;
        clearInterval(check);
        clearTimeout(limit);
        fn();
      };
      const check = setInterval(() => {
        void this.alive().then((ok) => {
          if (!ok)
            settle(() =>
              reject(new StoreError('unavailable', `${what}: PostgreSQL stopped answering (a fresh connection got no answer either)`)),
            );
        });
      }, STALL_CHECK_MS);
      const limit = setTimeout(
        () =>
          settle(() => {
            if (limitMs > this.statementTimeoutMs) this.poolDead();
            reject(new StoreError('unavailable', `${what}: PostgreSQL did not answer within ${limitMs} ms`));
          }),
        limitMs,
      );
      let running: Promise<T>;
      try {
        running = work();
      } catch (err) {
        running = Promise.reject(err);
      }
      running.then(
        (v) => {
          this.answered = true;
          settle(() => resolve(v));
        },
        (err: unknown) => {
          if (nativeCodeOf(err) === READ_ONLY) {
            // A refusal is an answer: a pool whose new connections reached the old primary
            // too (its address still led there) and that only wrote is replaced again.
            this.answered = true;
            this.readOnly();
          }
          settle(() => reject(err));
        },
      );
    });
  }

  close(): void {
    this.closed = true;
    if (this.reprobe) clearTimeout(this.reprobe);
    this.reprobe = null;
  }

  private alive(): Promise<boolean> {
    this.probing ??= this.probe().then(
      () => true,
      () => {
        this.poolDead();
        this.unreachable = true;
        this.scheduleReprobe();
        return false;
      },
    );
    const mine = this.probing;
    void mine.finally(() => {
      if (this.probing === mine) this.probing = null;
    });
    return mine;
  }

  private readOnly(): void {
    const now = systemClock.now();
    if (now - this.readOnlyAt < READ_ONLY_REPLACE_MS) return;
    this.readOnlyAt = now;
    this.poolDead(true);
  }

  private poolDead(readOnly = false): void {
    // After close, a call still waiting must not open a pool (and LISTEN connection) nobody ends.
    if (!this.answered || this.closed) return;
    this.answered = false;
    this.replacePool(readOnly);
  }

  private scheduleReprobe(): void {
    if (this.reprobe || this.closed) return;
    this.reprobe = setTimeout(() => {
      this.reprobe = null;
      void this.probe().then(
        () => {
          this.unreachable = false;
        },
        () => this.scheduleReprobe(),
      );
    }, REPROBE_MS);
    this.reprobe.unref?.();
  }
}

/** Settles with `work`, or rejects with StoreError 'unavailable' after `ms`. */
export function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreError('unavailable', `${what}: no answer within ${ms} ms`)), ms);
  });
  work.catch(() => undefined);
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
