import { join } from 'node:path';
import { expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { compileServerOptions, compileWorkerOptions } from '../../src/config/options.js';
import { silentLogger } from '../../src/log.js';
import type { ServerFrame } from '../../src/protocol/frames.js';
import { inProcessPair } from '../../src/protocol/in-process.js';
import { Engine } from '../../src/server/engine.js';
// The build the store uses: locks between two copies of SQLite in one process do not conflict.
import { Database } from '../../src/store/sqlite/better-sqlite3.js';
import { Controller } from '../../src/worker/controller.js';
import { onCleanup, tempDir, until } from '../helpers.js';

it('an in-process worker whose hello the server could not take connects again, and runs its tasks', async () => {
  const path = join(tempDir(), 'busy.db');
  const engine = await Engine.open(compileServerOptions({ store: path }), silentLogger);
  onCleanup(() => engine.close());
  engine.start();
  // Another process holds the database's write lock: the hello cannot register the worker's
  // lambda (SQLITE_BUSY after the busy timeout) and the server closes the link.
  const other = new Database(path);
  onCleanup(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  const errors: ServerFrame[] = [];
  const transport = inProcessPair((link) =>
    engine.connectWorker({
      ...link,
      send: (f) => {
        if (f.type === 'error') {
          errors.push(f);
          if (other.inTransaction) other.exec('COMMIT'); // the lock is let go
        }
        link.send(f);
      },
      sendTasks: (rows) => link.sendTasks(rows),
      close: (code, reason) => link.close(code, reason),
    }),
  );
  const worker = new Controller(
    [{ name: 'late', handler: async (p: unknown) => p }],
    compileWorkerOptions({ concurrency: 2 }),
    transport,
    systemClock,
    silentLogger,
  );
  worker.start();
  onCleanup(() => worker.stop(0));
  await until(() => errors.length > 0, 20_000, 'the refused hello'); // after the busy timeout, 5 s
  expect(errors[0]).toMatchObject({ type: 'error', error: { code: 'store_unavailable' } });
  // Connected again after a backoff, the worker takes the lambda's tasks.
  await until(() => engine.dispatcher.serves('late'), 5000, 'the second hello');
  const [{ task }] = await engine.submit([{ lambda: 'late', payload: 42 }]);
  await until(async () => (await engine.get(task.id)).task.state === 'SUCCESS', 5000, 'the task');
}, 40_000);
