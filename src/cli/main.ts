import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { devCommand } from './commands/dev.js';
import { lambdasCommand, pauseCommand, resumeCommand } from './commands/lambdas.js';
import { migrateCommand } from './commands/migrate.js';
import { serverCommand } from './commands/server.js';
import { cancelCommand, getCommand, listCommand, retryCommand, submitCommand } from './commands/tasks.js';
import { workerCommand } from './commands/worker.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('conveyor')
  .description(
    'Conveyor: asynchronous tasks on SQLite or PostgreSQL. Every option of dev, server, worker and migrate also reads an env twin (CONVEYOR_*); the other commands read CONVEYOR_SERVER and CONVEYOR_TOKEN.',
  )
  .version(pkg.version)
  .showHelpAfterError('(add --help for usage)')
  .addCommand(devCommand())
  .addCommand(serverCommand())
  .addCommand(workerCommand())
  .addCommand(submitCommand())
  .addCommand(getCommand())
  .addCommand(listCommand())
  .addCommand(cancelCommand())
  .addCommand(retryCommand())
  .addCommand(pauseCommand())
  .addCommand(resumeCommand())
  .addCommand(lambdasCommand())
  .addCommand(migrateCommand());

// Usage errors read like every other failure (src/cli/common.ts): one line with its code.
// Subcommands added with addCommand do not inherit output settings, hence the loop.
const outputError = (text: string, write: (s: string) => void) => write(`${text.trim().replace(/\s*\n\s*/g, ' ')} (validation_failed)\n`);
for (const c of [program, ...program.commands]) c.configureOutput({ outputError });

// A reader that goes away early (`conveyor list | head -1`) is no failure: the rest of the
// output is dropped. Unhandled, the EPIPE ended the command with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

await program.parseAsync(process.argv);
