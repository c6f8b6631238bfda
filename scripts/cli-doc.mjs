#!/usr/bin/env node
// Writes docs/cli.md from the CLI's own --help texts (`npm run docs:cli`); test/cli/cli.test.ts
// fails when the file and the help texts differ, so the page cannot rot.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/conveyor.js', import.meta.url));
export const COMMANDS = ['dev', 'server', 'worker', 'submit', 'get', 'list', 'cancel', 'retry', 'pause', 'resume', 'lambdas', 'migrate'];

// Without DATABASE_URL, so --store shows the default a user without one gets (./conveyor.db).
const { DATABASE_URL: _unused, ...ENV } = process.env;
const help = (args) =>
  execFileSync(process.execPath, [BIN, ...args, '--help'], {
    encoding: 'utf8',
    env: { ...ENV, COLUMNS: '80' },
  }).trimEnd();

export function cliDoc() {
  const parts = [
    '# CLI',
    '',
    'Every command has `--help`. Every option of `dev`, `server`, `worker` and `migrate` also reads an environment twin (shown as `env:`), and `npm start` honours them too. Client commands talk to `--server` (default `http://127.0.0.1:8080`, env `CONVEYOR_SERVER`) with `--token` (env `CONVEYOR_TOKEN`). Failures print one line, `error: <message> (<code>)`, on stderr and exit with status 1; see [errors.md](errors.md). This page is generated from the help texts by `npm run docs:cli`.',
    '',
    '```',
    help([]),
    '```',
  ];
  for (const c of COMMANDS) parts.push('', `## conveyor ${c}`, '', '```', help([c]), '```');
  return `${parts.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../docs/cli.md', import.meta.url), cliDoc());
  process.stderr.write('docs/cli.md written\n');
}
