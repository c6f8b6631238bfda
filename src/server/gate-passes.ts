import type { Clock } from '../clock.js';
import type { Gate, GateMode } from '../core/gate.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Dispatcher } from './dispatcher.js';
import type { GateCache } from './gates.js';
import type { GroupCommit } from './group-commit.js';

/** Tasks per page of a gate pass; small enough that other writes interleave between pages. */
const GATE_PAGE = 1000;
/**
 * How long a gate change stays on record for its second pass, beyond the time another server
 * needs to take the sweep over from one that died (`takeoverMs`).
 */
const GATE_RECORD_MS = 60_000;

const changeKey = (g: Gate & { updatedAt: number }) => `${g.lambda}\u0000${g.collection}\u0000${g.mode}\u0000${g.updatedAt}`;

/**
 * Passes of gate changes over the tasks they cover: pause parks ready tasks, drop cancels ready
 * and held ones, open releases held ones, most urgent first.
 *
 * Placements read the gates from each server's cache, which lags a change: by a flush or two
 * in one process, by up to a signal or the refresh poll on a shared store. A placement decided
 * from the old gate just before a change can commit after the change's own pass: a task parked
 * under a gate since opened (nothing else would ever release it), or made ready under a gate
 * since dropped. So the sweep's holder passes each change a second time once every cache has
 * caught up with it (`settleMs` after it), while the change is on record (GATE_RECORD_MS), and
 * then forgets opened gates.
 */
export class GatePasses {
  /** Changes passed a second time here, by when they were made. */
  private readonly settled = new Map<string, number>();
  private settling = false;
  private forgotAt = 0;

  constructor(
    private readonly store: Store,
    private readonly commit: GroupCommit,
    private readonly gates: GateCache,
    private readonly dispatcher: Dispatcher,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly settleMs: number,
    /** The sweep duty's lease and the sweep intervals its next holder may take to notice it ran out. */
    private readonly takeoverMs: number,
  ) {}

  /** One pass of a gate over the tasks it covers, page by page. */
  async pass(lambda: string, collection: string, mode: GateMode): Promise<void> {
    const sources: Array<'ready' | 'held'> = mode === 'open' ? ['held'] : mode === 'pause' ? ['ready'] : ['ready', 'held'];
    for (const source of sources) {
      let after: { priority: number; id: string } | null = null;
      do {
        const page: { next: { priority: number; id: string } | null } = await this.commit.run((ops) =>
          ops.applyGate({ lambda, collection, mode, source, limit: GATE_PAGE, after }, this.gates.lookup),
        );
        after = page.next;
      } while (after !== null);
    }
    if (mode === 'open') this.dispatcher.markReady([lambda]);
  }

  /** The second pass of every change that every cache has had for `settleMs` (run by the sweep's holder). */
  async settle(): Promise<void> {
    if (this.settling) return;
    this.settling = true;
    try {
      const now = this.clock.now();
      const horizon = now - this.settleMs - this.takeoverMs - GATE_RECORD_MS;
      const changes = await this.store.read((o) => o.q.gateChangedSince(horizon));
      const due = changes.filter((g) => g.updatedAt <= now - this.settleMs && !this.settled.has(changeKey(g)));
      if (due.length) await this.gates.load();
      for (const g of due) {
        await this.pass(g.lambda, g.collection, g.mode);
        this.settled.set(changeKey(g), g.updatedAt);
      }
      for (const [k, at] of this.settled) if (at < horizon) this.settled.delete(k);
      if (now - this.forgotAt > GATE_RECORD_MS) {
        this.forgotAt = now;
        await this.commit.run((ops) => ops.q.gateForget(horizon));
      }
    } catch (err) {
      this.log.warn({ err }, 'second pass over changed gates failed; retrying at the next sweep');
    } finally {
      this.settling = false;
    }
  }
}
