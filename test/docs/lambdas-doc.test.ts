import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { onCleanup, tempDir } from '../helpers.js';

// docs/lambdas.md's complete module, run as a user would: from a file of their own application
// that imports 'conveyor' (the built package), with the Conveyor of that package.

const ROOT = join(import.meta.dirname, '../..');

/** The first ```js block under the heading "A complete module". */
function documentedModule(): string {
  const doc = readFileSync(join(ROOT, 'docs/lambdas.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## A complete module'));
  const block = /```js\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('docs/lambdas.md: no js block under "A complete module"');
  return block[1];
}

it('runs the complete module of docs/lambdas.md as the page says', async () => {
  const app = tempDir();
  writeFileSync(join(app, 'package.json'), '{"name":"app","version":"1.0.0","type":"module"}');
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(ROOT, join(app, 'node_modules', 'conveyor'));
  writeFileSync(join(app, 'billing.mjs'), documentedModule());

  // The package's build, as the module's own import('conveyor') resolves it.
  const { Conveyor } = await import(pathToFileURL(join(ROOT, 'dist/index.js')).href);
  const billing = await import(pathToFileURL(join(app, 'billing.mjs')).href);
  const conveyor = await new Conveyor({ store: join(app, 'app.db'), lambdas: Object.values(billing) }).start();
  onCleanup(() => conveyor.close());

  const settings = Object.fromEntries((await conveyor.lambdas()).map((l: { name: string; config: unknown }) => [l.name, l.config]));
  expect(settings.charge).toMatchObject({ timeoutMs: 10_000, maxAttempts: 4, concurrency: 2, priority: 5 });
  expect(settings.charge.backoff).toEqual({ baseMs: 200, maxMs: 5_000, factor: 2 });
  expect(settings['invoice-run'].cron).toEqual({ pattern: '0 6 * * 1-5', timezone: 'Europe/Paris', payload: { kind: 'daily' } });

  const run = async (payload: unknown) => {
    const t = await conveyor.submit('charge', payload);
    return conveyor.waitFor(t.id, { timeoutMs: 20_000 });
  };
  const [paid, refused, flaky, held, hopeless] = await Promise.all([
    run({ cents: 1000, currency: 'USD' }),
    run({ cents: 1000, currency: 'XXX' }),
    run({ cents: 500, currency: 'EUR', failTimes: 2 }),
    run({ cents: 500, currency: 'EUR', holdUntil: Date.now() + 300 }),
    run({ cents: 500, currency: 'EUR', failTimes: 99 }),
  ]);
  // Returns: SUCCESS with the value as its result.
  expect(paid).toMatchObject({ state: 'SUCCESS', priority: 5, result: { chargedEurCents: 920, reference: `pay-${paid.id}` } });
  // FatalError: FATAL_FAILURE at once.
  expect(refused).toMatchObject({ state: 'FATAL_FAILURE', attempt: 1, error: { message: 'unknown currency XXX' } });
  // A thrown error: again after the backoff.
  expect(flaky).toMatchObject({ state: 'SUCCESS', attempt: 3, tries: 3 });
  // retryAfter: again later without spending an attempt.
  expect(held).toMatchObject({ state: 'SUCCESS', attempt: 2, tries: 1 });
  // maxAttempts spent: FATAL_FAILURE after the fourth.
  expect(hopeless).toMatchObject({ state: 'FATAL_FAILURE', attempt: 4, tries: 4 });
  const failed = (await conveyor.get(flaky.id)).attempts.map((a: { outcome: string }) => a.outcome);
  expect(failed).toEqual(['error', 'error', 'success']);
}, 30_000);
