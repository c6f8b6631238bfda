import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TaskRow } from '../../core/task.js';
import type { Driver } from '../driver.js';
import { dependencyCases } from './dependency-cases.js';
import { gateCases } from './gate-cases.js';
import { handoutCases } from './handout-cases.js';
import { type ContractTarget, Harness, LEASE_MS, TIMING } from './harness.js';
import { insertCases } from './insert-cases.js';

/**
 * The store contract: what every dialect must do, run against SQLite and the real
 * PostgreSQL alike. New store behaviour gets a case here, not in one store's tests.
 */
export function runStoreContract(target: ContractTarget): void {
  describe(`store contract: ${target.name}`, () => {
    let driver: Driver;
    let h: Harness;

    beforeEach(async () => {
      driver = await target.makeDriver();
      await driver.migrate();
      h = new Harness(driver);
    });

    afterEach(async () => {
      await driver.close();
      await target.cleanup?.(driver);
    });

    insertCases(() => h);
    handoutCases(() => h);
    gateCases(() => h);
    dependencyCases(() => h);

    describe('claim', () => {
      it('claims only ENQUEUED tasks, highest priority first, and bumps the attempt', async () => {
        const [low, high, mid, later] = await h.insert(
          h.task({ priority: 0 }),
          h.task({ priority: 10 }),
          h.task({ priority: 5 }),
          h.task({ priority: 99, runAt: h.clock.now() + 60_000 }),
        );
        const claimed = await h.claim('work', 2);
        expect(claimed.map((r) => r.id).sort()).toEqual([high.id, mid.id].sort());
        for (const r of claimed) {
          expect(r.state).toBe('CLAIMED');
          expect(r.attempt).toBe(1);
          expect(r.tries).toBe(1);
          expect(r.nextCheckAt).toBe(h.clock.now() + LEASE_MS);
        }
        expect((await h.claim('work', 10)).map((r) => r.id)).toEqual([low.id]);
        expect(await h.claim('work', 10)).toEqual([]);
        expect((await h.get(later.id)).state).toBe('NEW');
      });

      it('lets two claimers never win the same task', async () => {
        await h.insert(...Array.from({ length: 50 }, () => h.task()));
        const [a, b] = await Promise.all([h.claim('work', 30, 0, 'w1'), h.claim('work', 30, 0, 'w2')]);
        const ids = [...a, ...b].map((r) => r.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(ids.length).toBe(50);
      });

      it('claims only the asked lambda', async () => {
        await h.insert(h.task({ lambda: 'other' }));
        expect(await h.claim('work')).toEqual([]);
        expect((await h.claim('other')).length).toBe(1);
      });

      it('gives the overdue share to the oldest tasks past their enqueue timeout (aging)', async () => {
        const [old] = await h.insert(h.task({ priority: -5 }));
        h.clock.advance(TIMING.enqueueTimeoutMs + 1);
        await h.insert(...Array.from({ length: 5 }, () => h.task({ priority: 5 })));
        const strict = await h.claim('work', 1, 0);
        expect(strict[0].priority).toBe(5);
        const aged = await h.claim('work', 1, 1);
        expect(aged.map((r) => r.id)).toEqual([old.id]);
      });
    });

    describe('fencing, outcomes and leases', () => {
      it('records a success once and refuses a stale attempt', async () => {
        await h.insert(h.task());
        const [c] = await h.claim();
        expect(await h.succeed({ id: c.id, attempt: c.attempt + 1 })).toEqual(new Set());
        expect(await h.succeed(c, { v: 7 })).toEqual(new Set([c.id]));
        const row = await h.get(c.id);
        expect(row.state).toBe('SUCCESS');
        expect(JSON.parse(row.result as string)).toEqual({ v: 7 });
        expect(row.finishedAt).toBe(h.clock.now());
        expect(await h.succeed(c)).toEqual(new Set());
      });

      it('clears the error of a failed attempt when a later one succeeds; the history keeps it', async () => {
        await h.insert(h.task());
        let [c] = await h.claim();
        await h.fail(c);
        const failed = await h.get(c.id);
        expect(failed.error).not.toBeNull();
        h.clock.advance((failed.nextCheckAt as number) - h.clock.now());
        await h.sweep();
        [c] = await h.claim();
        await h.succeed(c);
        expect((await h.get(c.id)).error).toBeNull();
        const history = await h.store.read((o) => o.q.attemptList(c.id));
        expect(history.map((a) => a.outcome)).toEqual(['error']);
        expect(history[0].error).not.toBeNull();
      });

      it('marks a start as PROCESSING only for the holder of the attempt', async () => {
        await h.insert(h.task());
        const [c] = await h.claim();
        const ok = await h.tx((o) =>
          o.start(
            [
              { id: c.id, attempt: c.attempt, workerId: 'w1', startedAt: h.clock.now() },
              { id: c.id, attempt: c.attempt + 5, workerId: 'w2', startedAt: h.clock.now() },
            ],
            LEASE_MS,
          ),
        );
        expect(ok).toEqual(new Set([c.id]));
        const row = await h.get(c.id);
        expect(row.state).toBe('PROCESSING');
        expect(row.workerId).toBe('w1');
      });

      it('renews held leases and reports the lost ones', async () => {
        await h.insert(h.task(), h.task());
        const [a, b] = await h.claim();
        await h.succeed(b);
        h.clock.advance(1000);
        const lost = await h.tx((o) =>
          o.renew(
            [a, b].map((r) => ({ id: r.id, attempt: r.attempt })),
            LEASE_MS,
          ),
        );
        expect(lost).toEqual([{ id: b.id, attempt: b.attempt }]);
        expect((await h.get(a.id)).nextCheckAt).toBe(h.clock.now() + LEASE_MS);
      });

      it('retries a failure after backoff, then ends in FATAL_FAILURE when the budget is spent', async () => {
        const [t] = await h.insert(h.task({ maxAttempts: 2 }));
        let [c] = await h.claim();
        expect(await h.fail(c)).toEqual(new Set([t.id]));
        let row = await h.get(t.id);
        expect(row.state).toBe('RETRIABLE_FAILURE');
        expect(row.nextCheckAt).toBeGreaterThan(h.clock.now());
        expect(await h.claim()).toEqual([]);
        h.clock.set(row.nextCheckAt as number);
        const swept = await h.sweep();
        expect(swept.enqueued.get('work')).toBe(1);
        [c] = await h.claim();
        expect(c.attempt).toBe(2);
        await h.fail(c);
        row = await h.get(t.id);
        expect(row.state).toBe('FATAL_FAILURE');
        const attempts = await h.store.read((o) => o.q.attemptList(t.id));
        expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual([
          [1, 'error'],
          [2, 'error'],
        ]);
      });

      it('ends a fatal error at once', async () => {
        await h.insert(h.task({ maxAttempts: 5 }));
        const [c] = await h.claim();
        await h.fail(c, 'fatal');
        expect((await h.get(c.id)).state).toBe('FATAL_FAILURE');
      });

      it('does not spend the budget on a snooze or a release', async () => {
        const [t] = await h.insert(h.task({ maxAttempts: 1 }));
        let [c] = await h.claim();
        await h.fail(c, 'snoozed', 2000);
        let row = await h.get(t.id);
        expect(row.state).toBe('RETRIABLE_FAILURE');
        expect(row.tries).toBe(0);
        expect(row.nextCheckAt).toBe(h.clock.now() + 2000);
        h.clock.advance(2000);
        await h.sweep();
        [c] = await h.claim();
        expect(await h.tx((o) => o.release([{ id: c.id, attempt: c.attempt }], h.gate))).toEqual(new Set([t.id]));
        row = await h.get(t.id);
        expect(row.state).toBe('ENQUEUED');
        expect(row.tries).toBe(0);
        [c] = await h.claim();
        expect(c.attempt).toBe(3); // the fencing token still grows
        await h.fail(c);
        expect((await h.get(t.id)).state).toBe('FATAL_FAILURE');
      });

      it('rescues an expired lease as a failed attempt, and refuses the late outcome', async () => {
        const [t] = await h.insert(h.task());
        const [c] = await h.claim();
        h.clock.advance(LEASE_MS + 1);
        const r = await h.sweep();
        expect(r.rescued).toBe(1);
        const row = await h.get(t.id);
        expect(row.state).toBe('RETRIABLE_FAILURE');
        expect(JSON.parse(row.error as string).name).toBe('LeaseExpired');
        expect(await h.succeed(c)).toEqual(new Set());
        expect((await h.store.read((o) => o.q.attemptList(t.id)))[0].outcome).toBe('lost');
      });

      it('deletes finished tasks after retention', async () => {
        await h.insert(h.task());
        const [c] = await h.claim();
        await h.succeed(c);
        h.clock.advance(TIMING.retentionMs + 1);
        expect((await h.sweep()).deleted).toBe(1);
        expect(await h.store.read((o) => o.q.taskGet(c.id))).toBeNull();
      });

      it('deletes a task read as past retention only if it still is (a retry may revive it meanwhile)', async () => {
        await h.insert(h.task(), h.task());
        const [revived, kept] = await h.claim('work', 2);
        await h.fail(revived, 'fatal');
        await h.succeed(kept);
        h.clock.advance(TIMING.retentionMs + 1);
        // Another writer re-drives one of them after the sweep read both as expired.
        await h.tx((o) => o.redrive(revived.id, h.gate));
        const deleted = await h.tx((o) => o.q.taskDeleteMany([revived.id, kept.id], h.clock.now()));
        expect(deleted).toBe(1);
        expect((await h.get(revived.id)).state).not.toBe('FATAL_FAILURE');
        expect(await h.store.read((o) => o.q.taskGet(kept.id))).toBeNull();
      });
    });

    describe('cancel and re-drive', () => {
      it('cancels NEW, ENQUEUED and RETRIABLE_FAILURE tasks and refuses the rest', async () => {
        const [a, b, c, d] = await h.insert(h.task({ runAt: h.clock.now() + 1000 }), h.task(), h.task(), h.task());
        expect((await h.tx((o) => o.cancel(a.id, h.gate))).state).toBe('CANCELLED');
        expect((await h.tx((o) => o.cancel(b.id, h.gate))).reason).toBe('cancelled');
        const claimed = await h.claim('work', 2);
        const retriable = claimed[0];
        await h.fail(retriable);
        expect((await h.tx((o) => o.cancel(retriable.id, h.gate))).state).toBe('CANCELLED');
        const running = claimed[1];
        await expect(h.tx((o) => o.cancel(running.id, h.gate))).rejects.toMatchObject({ code: 'invalid_state' });
        await expect(h.tx((o) => o.cancel('01ZZZZZZZZZZZZZZZZZZZZZZZZ', h.gate))).rejects.toMatchObject({ code: 'task_not_found' });
        void c;
        void d;
      });

      it('re-drives a dead task with a fresh budget and refuses a live one', async () => {
        const [t] = await h.insert(h.task({ maxAttempts: 1 }));
        const [c] = await h.claim();
        await h.fail(c);
        expect((await h.get(t.id)).state).toBe('FATAL_FAILURE');
        const again = await h.tx((o) => o.redrive(t.id, h.gate));
        expect(again.state).toBe('ENQUEUED');
        expect(again.tries).toBe(0);
        expect(again.error).toBeNull();
        await expect(h.tx((o) => o.redrive(t.id, h.gate))).rejects.toMatchObject({ code: 'invalid_state' });
        const [c2] = await h.claim();
        expect(c2.attempt).toBe(2);
      });

      it('re-drives a child to wait for its parents again, and refuses one whose parent is still dead', async () => {
        const [running] = await h.insert(h.task());
        const [p] = await h.insert(h.task({ lambda: 'parent', maxAttempts: 1 }));
        const [cancelledKid] = await h.insert(h.task({ lambda: 'child', dependsOn: [running.id] }));
        const [orphan] = await h.insert(h.task({ lambda: 'child', dependsOn: [p.id] }));
        await h.tx((o) => o.cancel(cancelledKid.id, h.gate));
        // Its parent has not succeeded: the retried child waits for it, as at its submit.
        const waiting = await h.tx((o) => o.redrive(cancelledKid.id, h.gate));
        expect([waiting.state, waiting.hold]).toEqual(['NEW', 'deps']);
        await h.succeed((await h.claim())[0]);
        expect((await h.get(cancelledKid.id)).state).toBe('ENQUEUED');

        await h.fail((await h.claim('parent'))[0], 'fatal');
        expect((await h.get(orphan.id)).reason).toBe('dependency_failed');
        await expect(h.tx((o) => o.redrive(orphan.id, h.gate))).rejects.toMatchObject({ code: 'invalid_state' });
        expect((await h.get(orphan.id)).state).toBe('CANCELLED');
        // Retried after its parent, it waits for the parent's new run and starts after it.
        await h.tx((o) => o.redrive(p.id, h.gate));
        expect((await h.tx((o) => o.redrive(orphan.id, h.gate))).hold).toBe('deps');
        await h.succeed((await h.claim('parent'))[0]);
        expect((await h.get(orphan.id)).state).toBe('ENQUEUED');
      });
    });

    describe('ordered keys', () => {
      it('releases the next task of a key only when the one before it ended', async () => {
        const [a, b, c] = await h.insert(
          h.task({ key: 'k', ordered: true }),
          h.task({ key: 'k', ordered: true }),
          h.task({ key: 'k', ordered: true }),
        );
        const [other] = await h.insert(h.task({ key: 'k2', ordered: true }));
        expect([a.state, b.hold, c.hold, other.state]).toEqual(['ENQUEUED', 'key', 'key', 'ENQUEUED']);
        const first = await h.claim('work', 10);
        expect(first.map((r) => r.id).sort()).toEqual([a.id, other.id].sort());
        await h.succeed(first.find((r) => r.id === a.id) as TaskRow);
        expect((await h.get(b.id)).state).toBe('ENQUEUED');
        expect((await h.get(c.id)).hold).toBe('key');
        const [cb] = await h.claim();
        await h.fail(cb, 'fatal');
        expect((await h.get(c.id)).state).toBe('ENQUEUED');
      });

      it('does not let a later task that waits for its parents take the turn of an earlier one', async () => {
        const [parent] = await h.insert(h.task({ lambda: 'parent' }));
        const [a, earlier] = await h.insert(h.task({ key: 'k', ordered: true }), h.task({ key: 'k', ordered: true }));
        const [later] = await h.insert(h.task({ key: 'k', ordered: true, dependsOn: [parent.id] }));
        const [last] = await h.insert(h.task({ key: 'k', ordered: true }));
        await h.succeed((await h.claim())[0]);
        expect((await h.get(a.id)).state).toBe('SUCCESS');
        // The earlier task's turn: the later one has not even become ready.
        expect((await h.get(earlier.id)).state).toBe('ENQUEUED');
        await h.succeed((await h.claim('parent'))[0]);
        expect((await h.get(later.id)).hold).toBe('key');
        await h.succeed((await h.claim())[0]);
        expect((await h.get(later.id)).state).toBe('ENQUEUED');
        expect((await h.get(last.id)).hold).toBe('key');
        await h.succeed((await h.claim())[0]);
        expect((await h.get(last.id)).state).toBe('ENQUEUED');
      });
    });

    describe('reads and bookkeeping', () => {
      it('lists newest first with a cursor, filtered by lambda, state and key', async () => {
        const rows = await h.insert(...Array.from({ length: 5 }, (_, i) => h.task({ key: i % 2 ? 'odd' : 'even' })));
        const page1 = await h.store.read((o) => o.q.taskList({ limit: 2 }));
        expect(page1.map((r) => r.id)).toEqual([rows[4].id, rows[3].id]);
        const page2 = await h.store.read((o) => o.q.taskList({ limit: 2, beforeId: rows[3].id }));
        expect(page2.map((r) => r.id)).toEqual([rows[2].id, rows[1].id]);
        expect((await h.store.read((o) => o.q.taskList({ limit: 10, key: 'odd' }))).length).toBe(2);
        expect((await h.store.read((o) => o.q.taskList({ limit: 10, state: 'ENQUEUED', lambda: 'work' }))).length).toBe(5);
        const counts = await h.store.read((o) => o.q.taskCounts());
        expect(counts).toEqual([{ lambda: 'work', state: 'ENQUEUED', count: 5 }]);
      });

      it('lists tasks of a failure state newest first, through its own index', async () => {
        const rows = await h.insert(...Array.from({ length: 4 }, () => h.task()));
        for (const r of [rows[0], rows[2], rows[3]]) await h.tx((o) => o.cancel(r.id, h.gate));
        const page = await h.store.read((o) => o.q.taskList({ limit: 2, state: 'CANCELLED' }));
        expect(page.map((r) => r.id)).toEqual([rows[3].id, rows[2].id]);
        const rest = await h.store.read((o) => o.q.taskList({ limit: 2, state: 'CANCELLED', beforeId: rows[2].id }));
        expect(rest.map((r) => r.id)).toEqual([rows[0].id]);
        expect(await h.store.read((o) => o.q.taskList({ limit: 10, state: 'FATAL_FAILURE' }))).toEqual([]);
      });

      it('holds a singleton lease for one holder at a time until it expires', async () => {
        const now = h.clock.now();
        expect(await h.tx((o) => o.q.leaseTry('sweep', 'a', now, now + 1000))).toBe(true);
        expect(await h.tx((o) => o.q.leaseTry('sweep', 'b', now, now + 1000))).toBe(false);
        expect(await h.tx((o) => o.q.leaseTry('sweep', 'a', now + 500, now + 1500))).toBe(true);
        expect(await h.tx((o) => o.q.leaseTry('sweep', 'b', now + 1500, now + 2500))).toBe(true);
        await h.tx((o) => o.q.leaseRelease('sweep', 'b'));
        expect(await h.tx((o) => o.q.leaseTry('sweep', 'a', now + 1600, now + 2600))).toBe(true);
      });

      it('remembers lambdas, gates and cron progress', async () => {
        const config = {
          name: 'x',
          timeoutMs: 1,
          maxAttempts: 2,
          backoff: { baseMs: 1, maxMs: 2, factor: 2 },
          concurrency: null,
          priority: 0,
          cron: null,
          isolation: 'inline' as const,
        };
        await h.tx((o) => o.q.lambdaUpsertMany([{ name: 'x', config, updatedAt: 1 }]));
        expect((await h.store.read((o) => o.q.lambdaList()))[0].config).toEqual(config);
        await h.tx((o) => o.q.gateSet({ lambda: 'x', collection: '*', mode: 'pause' }, 1));
        expect(await h.store.read((o) => o.q.gateList())).toEqual([{ lambda: 'x', collection: '*', mode: 'pause' }]);
        await h.tx((o) => o.q.gateSet({ lambda: 'x', collection: '*', mode: 'open' }, 2));
        expect(await h.store.read((o) => o.q.gateList())).toEqual([]);
        // An opened gate stays on record for the second pass over its tasks, until forgotten.
        await h.tx((o) => o.q.gateSet({ lambda: 'y', collection: 'c', mode: 'drop' }, 5));
        expect(await h.store.read((o) => o.q.gateChangedSince(2))).toEqual(
          expect.arrayContaining([
            { lambda: 'x', collection: '*', mode: 'open', updatedAt: 2 },
            { lambda: 'y', collection: 'c', mode: 'drop', updatedAt: 5 },
          ]),
        );
        expect(await h.store.read((o) => o.q.gateChangedSince(3))).toEqual([{ lambda: 'y', collection: 'c', mode: 'drop', updatedAt: 5 }]);
        await h.tx((o) => o.q.gateForget(10));
        expect(await h.store.read((o) => o.q.gateChangedSince(0))).toEqual([{ lambda: 'y', collection: 'c', mode: 'drop', updatedAt: 5 }]);
        await h.tx((o) => o.q.cronSet('x', 1000));
        await h.tx((o) => o.q.cronSet('x', 500));
        expect(await h.store.read((o) => o.q.cronGet('x'))).toBe(1000);
      });

      it('answers the earliest next check of the sweep', async () => {
        expect(await h.store.read((o) => o.q.taskNextCheck())).toBeNull();
        await h.insert(h.task({ runAt: h.clock.now() + 300 }), h.task({ runAt: h.clock.now() + 100 }));
        expect(await h.store.read((o) => o.q.taskNextCheck())).toBe(h.clock.now() + 100);
      });

      it('rolls back a transaction that throws', async () => {
        const t = h.task();
        await expect(
          h.tx(async (o) => {
            await o.insert([t], h.gate);
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await h.store.read((o) => o.q.taskGet(t.id))).toBeNull();
      });
    });

    describe('wake-ups', () => {
      it('hands a notify to listeners once its transaction commits, never after a rollback (a no-op without listenNotify)', async () => {
        const send = (payload: string, commit: boolean) =>
          driver
            .transaction(async (q) => {
              await q.notify('contract', payload);
              if (!commit) throw new Error('roll back');
            })
            .catch(() => undefined);
        if (!driver.capabilities.listenNotify || !driver.listen) {
          await send('alone', true); // must not fail
          return;
        }
        const heard: string[] = [];
        const stop = await driver.listen('contract', (p) => heard.push(p));
        await send('committed', true);
        await send('rolled back', false);
        await send('last', true);
        await vi.waitFor(() => expect(heard).toContain('last'), { timeout: 5000 });
        expect(heard).toEqual(['committed', 'last']);
        await stop();
      });
    });
  });
}
