import { expect, it } from 'vitest';
import { PostgresDriver } from '../../src/store/postgres/postgres-driver.js';
import { onCleanup, sleep } from '../helpers.js';
import { describeIf } from './pg-env.js';
import { privateClusterUnavailable, startPrivateCluster } from './private-cluster.js';

describeIf(privateClusterUnavailable(), 'PostgreSQL driver closed while the database does not answer (private cluster)', () => {
  it('opens no pool after close: a call still waiting then does not replace it', async () => {
    const cluster = await startPrivateCluster();
    onCleanup(() => cluster.destroy());
    const d = new PostgresDriver({ url: cluster.url });
    await d.migrate();
    await d.listen('wake', () => undefined);
    await d.ping();

    await cluster.freeze();
    const read = d.read((q) => q.taskOpenCount()).catch((err: unknown) => err);
    await sleep(100);
    await d.close(); // cuts the hung connections after its 5 s
    await read;
    await cluster.thaw();
    await sleep(3000); // a LISTEN connection of a pool opened meanwhile would be back by now
    const replaced = d.counters.poolReplaced;
    // The LISTEN connection of a pool opened after close stays open (and keeps the process alive).
    const open = await cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conveyor'");
    expect({ replaced, open: open.trim() }).toEqual({ replaced: 0, open: '0' });
  }, 60_000);
});
