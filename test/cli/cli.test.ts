import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { COMMANDS, cliDoc } from '../../scripts/cli-doc.mjs';
import { conveyor, freePort } from '../crash/processes.js';
import { startConveyor, tempDir } from '../helpers.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/conveyor.js');

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('CLI', () => {
  it('documents every command in docs/cli.md exactly as --help prints it', () => {
    expect(COMMANDS.length).toBeGreaterThan(10);
    expect(readFileSync(join(import.meta.dirname, '../../docs/cli.md'), 'utf8')).toBe(cliDoc());
  });

  it('does not print DATABASE_URL (and its password) as the default of --store in --help', async () => {
    for (const cmd of ['server', 'migrate']) {
      const { code, stdout } = await cli([cmd, '--help'], { DATABASE_URL: 'postgres://app:hunter2@db:5432/app' });
      expect(code).toBe(0);
      expect(stdout).not.toContain('hunter2');
      expect(stdout).toContain('$DATABASE_URL, else "./conveyor.db"');
    }
  });

  it('has an env twin for every option of dev, server, worker and migrate, as the help says', async () => {
    const { devCommand } = await import('../../src/cli/commands/dev.js');
    const { serverCommand } = await import('../../src/cli/commands/server.js');
    const { workerCommand } = await import('../../src/cli/commands/worker.js');
    const { migrateCommand } = await import('../../src/cli/commands/migrate.js');
    const main = readFileSync(join(import.meta.dirname, '../../src/cli/main.ts'), 'utf8');
    expect(main).toContain('Every option of dev, server, worker and migrate also reads an env twin');
    for (const cmd of [devCommand(), serverCommand(), workerCommand(), migrateCommand()]) {
      // --insecure reads CONVEYOR_INSECURE itself (insecureOf), and says so in its description.
      const missing = cmd.options.filter((o) => !o.envVar && !o.description.includes('env CONVEYOR_')).map((o) => o.long);
      expect(missing, cmd.name()).toEqual([]);
    }
  });

  it('submits, gets, lists, pauses and resumes through a running server, with env twins', async () => {
    const c = await startConveyor({
      lambdas: [
        { name: 'echo', handler: async (p) => p },
        { name: 'boom', handler: async () => Promise.reject(new Error('no')), maxAttempts: 1 },
      ],
    });
    const url = await c.listen({ port: 0, token: 'tk' });
    const env = { CONVEYOR_SERVER: url, CONVEYOR_TOKEN: 'tk' };
    const sub = await cli(['submit', 'echo', '{"a":1}', '--priority', '3', '--wait'], env);
    expect(sub.code).toBe(0);
    const task = JSON.parse(sub.stdout);
    expect(task).toMatchObject({ state: 'SUCCESS', priority: 3, result: { a: 1 } });
    const failed = await cli(['submit', 'boom', '--wait'], env);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ state: 'FATAL_FAILURE' });
    expect(JSON.parse((await cli(['get', task.id], env)).stdout).id).toBe(task.id);
    expect(JSON.parse((await cli(['list', '--lambda', 'echo'], env)).stdout).tasks).toHaveLength(1);
    expect(JSON.parse((await cli(['pause', 'echo'], env)).stdout).paused).toBe(true);
    expect(JSON.parse((await cli(['resume', 'echo'], env)).stdout).paused).toBe(false);
  });

  it('runs a .ts lambda module that imports from \'conveyor\' in a package without "type": "module"', async () => {
    // npm's default package: tsx compiles the module to CommonJS, whose require('conveyor') must
    // get the Conveyor already running, not a second copy compiled by tsx.
    const app = tempDir();
    writeFileSync(join(app, 'package.json'), '{"name":"app","version":"1.0.0"}');
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(join(import.meta.dirname, '../..'), join(app, 'node_modules', 'conveyor'));
    writeFileSync(
      join(app, 'lambdas.ts'),
      `import { defineLambda, FatalError } from 'conveyor';\n` +
        `export const twice = defineLambda({ name: 'twice', handler: async (p: { n: number }) => {\n` +
        `  if (typeof p.n !== 'number') throw new FatalError('n must be a number');\n` +
        `  return { twice: p.n * 2 };\n` +
        `} });\n`,
    );
    const port = await freePort();
    const dev = conveyor(['dev', '--db', join(app, 'c.db'), '--port', String(port), '--lambdas', join(app, 'lambdas.ts')]);
    const url = await dev.ready;
    const sub = await cli(['submit', 'twice', '{"n":21}', '--wait'], { CONVEYOR_SERVER: url });
    expect(JSON.parse(sub.stdout)).toMatchObject({ state: 'SUCCESS', result: { twice: 42 } });
    const fatal = await cli(['submit', 'twice', '{}', '--wait'], { CONVEYOR_SERVER: url });
    expect(JSON.parse(fatal.stdout)).toMatchObject({ state: 'FATAL_FAILURE', attempt: 1 });
  });

  it('stops quietly when its output is closed early (conveyor list | head -1)', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
    const url = await c.listen({ port: 0 });
    const child = spawn(process.execPath, [BIN, 'list', '--server', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader goes away before the answer is printed: the write fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('prints one line and exits non-zero on bad input or an unreachable server', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
    const url = await c.listen({ port: 0 });
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['submit', 'nope', '--server', url], /^error: .*nope.* \(unknown_lambda\)\n$/],
      [['submit', 'echo', '{bad', '--server', url], /^error: the payload is not valid JSON.* \(invalid_json\)\n$/],
      [['get', '01ZZZZZZZZZZZZZZZZZZZZZZZZ', '--server', url], /^error: no task .* \(task_not_found\)\n$/],
      // a URL folds ".." away: asked as it is, it would have named another route
      [['cancel', '..', '--server', url], /^error: "\.\." is not a task id or a lambda name \(validation_failed\)\n$/],
      [
        ['submit', 'echo', '--priority', 'high', '--server', url],
        /^error: option '--priority <n>' argument 'high' is invalid.* \(validation_failed\)\n$/,
      ],
      [['submit', '--bogus'], /^error: unknown option '--bogus' \(validation_failed\)\n$/],
      [['migrate', '--store', 'postgres://127.0.0.1:1/x'], /^error: .*ECONNREFUSED.* \(store_unavailable\)\n$/],
      [['get', 'x', '--server', 'http://127.0.0.1:1'], /^error: cannot reach http:\/\/127\.0\.0\.1:1 .* \(server_unreachable\)\n$/],
      [['worker', '--server', url], /^error: required option '--lambdas <files...>' not specified \(validation_failed\)\n$/],
    ];
    // CONVEYOR_INSECURE=0 means no: an open listener without a token is still refused.
    const open = ['--host', '0.0.0.0', '--port', '0'];
    const store = ['--store', join(tempDir(), 'insecure.db')];
    cases.push(
      [['server', ...open, ...store], /^error: refusing to listen on 0\.0\.0\.0 without a token[^\n]*\n$/, { CONVEYOR_INSECURE: '0' }],
      [
        ['dev', ...open, '--db', join(tempDir(), 'dev.db')],
        /^error: refusing to listen on 0\.0\.0\.0 without a token[^\n]*\n$/,
        { CONVEYOR_INSECURE: 'false' },
      ],
      [
        ['server', ...open, ...store],
        /^error: CONVEYOR_INSECURE must be 1, true or yes.* \(validation_failed\)\n$/,
        { CONVEYOR_INSECURE: 'maybe' },
      ],
    );
    for (const [args, message, env] of cases) {
      const r = await cli(args, env);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(store[1] as string)).toBe(false); // refused before the store was opened
  });
});
