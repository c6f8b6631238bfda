import { Command } from 'commander';
import { compileServerOptions } from '../../config/options.js';
import { openDriver } from '../../store/open.js';
import { action, storeOption } from '../common.js';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply the store migrations (servers also apply them when they start)')
    .addOption(storeOption())
    .action(
      action(async (opts) => {
        const config = compileServerOptions({ store: opts.store });
        const driver = await openDriver(config.store, { synchronous: config.synchronous });
        try {
          const { applied } = await driver.migrate();
          process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
        } finally {
          await driver.close();
        }
      }),
    );
}
