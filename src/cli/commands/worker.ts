import { Command, Option } from 'commander';
import { createLogger } from '../../log.js';
import { loadLambdaModules } from '../../worker/lambda-loader.js';
import { Worker } from '../../worker/worker.js';
import { action, intArg, listOf, onShutdown } from '../common.js';

export function workerCommand(): Command {
  return new Command('worker')
    .description('run lambdas for a server over the worker protocol (reconnects by itself)')
    .addOption(new Option('--server <url>', 'server to connect to').env('CONVEYOR_SERVER').default('http://127.0.0.1:8080'))
    .addOption(new Option('--lambdas <files...>', 'lambda modules (.js, .mjs, .ts)').env('CONVEYOR_LAMBDAS').makeOptionMandatory())
    .addOption(
      new Option('--concurrency <n>', 'handlers running at once').env('CONVEYOR_CONCURRENCY').default(10).argParser(intArg(1, 10_000)),
    )
    .addOption(
      new Option('--prefetch <n>', 'tasks held ready beyond the running ones (default: concurrency)')
        .env('CONVEYOR_PREFETCH')
        .argParser(intArg(0, 100_000)),
    )
    .addOption(new Option('--token <token>', 'bearer token the server requires').env('CONVEYOR_TOKEN'))
    .addOption(
      new Option('--grace <ms>', 'on stop, how long running handlers may finish')
        .env('CONVEYOR_GRACE_MS')
        .default(10_000)
        .argParser(intArg(0, 2 ** 31 - 1)),
    )
    .addOption(new Option('--worker-id <id>', 'stable id of this worker (default host:pid:random)').env('CONVEYOR_WORKER_ID'))
    .action(
      action(async (opts) => {
        const log = createLogger({ pretty: process.stderr.isTTY, name: 'conveyor-worker' });
        const lambdas = await loadLambdaModules(listOf(opts.lambdas));
        const worker = new Worker({
          server: opts.server,
          token: opts.token,
          lambdas,
          concurrency: opts.concurrency,
          prefetch: opts.prefetch,
          shutdownGraceMs: opts.grace,
          workerId: opts.workerId,
          logger: log,
        }).start();
        onShutdown(() => worker.stop(), log);
        log.info(
          { lambdas: lambdas.map((l) => l.name), concurrency: opts.concurrency },
          `worker ${worker.id} connecting to ${opts.server}`,
        );
        // The id goes to stdout once the server has welcomed the worker: its lambdas are
        // registered there from that moment (scripts and tests wait for this line).
        const refused = async (err: unknown) => {
          await worker.stop(0);
          throw err;
        };
        await worker.ready.catch(refused);
        process.stdout.write(`${worker.id}\n`);
        // A server that refuses the token later (restarted with another one) ends the worker as
        // at the first connection: with status 1, so a supervisor sees it failed.
        await worker.refused.catch(refused);
      }),
    );
}
