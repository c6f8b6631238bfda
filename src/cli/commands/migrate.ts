import { Command, Option } from 'commander';
import { compileServerOptions } from '../../config/options.js';
import { openDriver } from '../../store/open.js';
import { action } from '../common.js';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply the store migrations (servers also apply them when they start)')
    .addOption(
      new Option('--store <location>', 'SQLite file, sqlite:PATH or postgres://...')
        .env('CONVEYOR_STORE')
        .default(process.env.DATABASE_URL ?? './conveyor.db'),
    )
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
