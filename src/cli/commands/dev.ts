import { Command, Option } from 'commander';
import { envTwins, serverOptionsFromEnv } from '../../config/env.js';
import { Conveyor } from '../../conveyor.js';
import { checkListenable } from '../../http/listen.js';
import { createLogger } from '../../log.js';
import { loadLambdaModules } from '../../worker/lambda-loader.js';
import { action, insecureOf, insecureOption, intArg, listenOrClose, listOf, onShutdown } from '../common.js';

export function devCommand(): Command {
  return new Command('dev')
    .description('run a server and an in-process worker on a SQLite file (development and single-machine use)')
    .addOption(new Option('--port <n>', 'HTTP port').env('CONVEYOR_PORT').default(8080).argParser(intArg(0, 65535)))
    .addOption(new Option('--host <addr>', 'address to listen on').env('CONVEYOR_HOST').default('127.0.0.1'))
    .addOption(new Option('--db <path>', 'SQLite file').env('CONVEYOR_STORE').default('./conveyor.db'))
    .addOption(new Option('--lambdas <files...>', 'lambda modules (.js, .mjs, .ts) to run').env('CONVEYOR_LAMBDAS'))
    .addOption(
      new Option('--concurrency <n>', 'handlers running at once').env('CONVEYOR_CONCURRENCY').default(10).argParser(intArg(1, 10_000)),
    )
    .addOption(new Option('--token <token>', 'require this bearer token on /v1 routes').env('CONVEYOR_TOKEN'))
    .addOption(insecureOption())
    .addOption(
      new Option('--grace <ms>', 'on Ctrl-C, how long running handlers may finish')
        .env('CONVEYOR_GRACE_MS')
        .default(10_000)
        .argParser(intArg(0, 2 ** 31 - 1)),
    )
    .addHelpText('after', `\nTuning from the environment: ${envTwins().join(', ')}.`)
    .action(
      action(async (opts) => {
        const insecure = insecureOf(opts.insecure);
        // Before the store opens: a refused address leaves no database file behind.
        checkListenable({ host: opts.host, token: opts.token, insecure });
        const log = createLogger({ pretty: process.stderr.isTTY });
        const lambdas = await loadLambdaModules(listOf(opts.lambdas));
        const conveyor = new Conveyor({
          ...serverOptionsFromEnv(),
          store: opts.db,
          lambdas,
          concurrency: opts.concurrency,
          shutdownGraceMs: opts.grace,
          logger: log,
        });
        await conveyor.start();
        const url = await listenOrClose(conveyor, { port: opts.port, host: opts.host, token: opts.token, insecure });
        log.info(
          { store: opts.db, lambdas: lambdas.map((l) => l.name), concurrency: opts.concurrency },
          `Conveyor dev server on ${url} (Ctrl-C to stop)`,
        );
        process.stdout.write(`${url}\n`);
        onShutdown(() => conveyor.close(), log);
      }),
    );
}
