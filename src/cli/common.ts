import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConveyorClient } from '../client/http-client.js';
import type { Conveyor, ListenOptions } from '../conveyor.js';
import { ConveyorError } from '../errors.js';
import { isUnavailable } from '../store/store-error.js';

/** Parses a whole number option, with the option's name in the error. */
export function intArg(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** --server and --token, with their env twins, for commands that talk to a running server. */
export function withServer(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <url>', 'server to talk to').env('CONVEYOR_SERVER').default('http://127.0.0.1:8080'))
    .addOption(new Option('--token <token>', 'bearer token, if the server requires one').env('CONVEYOR_TOKEN'));
}

/**
 * --store of server and migrate. Its default is DATABASE_URL when set, but --help shows the
 * rule, not the value: the URL usually holds the database password.
 */
export function storeOption(): Option {
  return new Option('--store <location>', 'SQLite file, sqlite:PATH or postgres://...')
    .env('CONVEYOR_STORE')
    .default(process.env.DATABASE_URL ?? './conveyor.db', '$DATABASE_URL, else "./conveyor.db"');
}

/**
 * --insecure. Its env twin is read by insecureOf, not by commander, which would switch a flag
 * on whenever its variable exists: CONVEYOR_INSECURE=0 would have allowed an open listener.
 */
export function insecureOption(): Option {
  return new Option('--insecure', 'allow a non-loopback --host without a token (env CONVEYOR_INSECURE=1)');
}

/** The flag, or CONVEYOR_INSECURE as 1/true/yes (0/false/no or empty: off; anything else is refused). */
export function insecureOf(flag: unknown, env: string | undefined = process.env.CONVEYOR_INSECURE): boolean {
  if (flag === true) return true;
  const v = (env ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  if (v === '1' || v === 'true' || v === 'yes') return true;
  throw new ConveyorError(
    'validation_failed',
    `CONVEYOR_INSECURE must be 1, true or yes to allow it (0, false or no not to), not ${JSON.stringify(env)}`,
  );
}

export function clientOf(opts: { server: string; token?: string }): ConveyorClient {
  return new ConveyorClient({ server: opts.server, token: opts.token });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Runs a command body; any failure becomes one line on stderr and exit code 1. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const code = err instanceof ConveyorError ? ` (${err.code})` : isUnavailable(err) ? ' (store_unavailable)' : '';
      process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}${code}\n`);
      process.exitCode = 1;
    }
  };
}

/** Parses a JSON argument with a readable error. */
export function jsonArg(text: string | undefined, what: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConveyorError('invalid_json', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Lists from an env var arrive as one string: "a.mjs,b.mjs". */
export function listOf(value: string[] | string | undefined): string[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/**
 * Listens once the store is open and the server roles run: if that fails (the port taken), they
 * are closed before the error is reported, or a PostgreSQL pool and the duties this server took
 * kept the process up, serving nothing.
 */
export async function listenOrClose(conveyor: Conveyor, opts: ListenOptions): Promise<string> {
  try {
    return await conveyor.listen(opts);
  } catch (err) {
    await conveyor.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Stops on SIGINT/SIGTERM: the first signal drains (running attempts get their grace
 * period), a second one exits at once.
 */
export function onShutdown(stop: () => Promise<void>, log: { info(msg: string): void }): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${sig} again: exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    log.info(`${sig}: draining (Ctrl-C again to exit at once)`);
    stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
