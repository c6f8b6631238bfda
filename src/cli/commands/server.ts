import { Command, Option } from 'commander';
import { envTwins, serverOptionsFromEnv } from '../../config/env.js';
import { Conveyor } from '../../conveyor.js';
import { checkListenable } from '../../http/listen.js';
import { createLogger } from '../../log.js';
import { action, insecureOf, insecureOption, intArg, listenOrClose, onShutdown, storeOption } from '../common.js';

export function serverCommand(): Command {
  return new Command('server')
    .description('run a server (HTTP API, scheduler, dispatcher) on a store; workers connect to it with `conveyor worker`')
    .addOption(storeOption())
    .addOption(new Option('--port <n>', 'HTTP port').env('CONVEYOR_PORT').default(8080).argParser(intArg(0, 65535)))
    .addOption(new Option('--host <addr>', 'address to listen on').env('CONVEYOR_HOST').default('127.0.0.1'))
    .addOption(new Option('--token <token>', 'require this bearer token on /v1 routes and from workers').env('CONVEYOR_TOKEN'))
    .addOption(insecureOption())
    .addHelpText('after', `\nTuning from the environment: ${envTwins().join(', ')}.`)
    .action(
      action(async (opts) => {
        const insecure = insecureOf(opts.insecure);
        // Before the store opens: a refused address leaves no database file behind.
        checkListenable({ host: opts.host, token: opts.token, insecure });
        const log = createLogger({ pretty: process.stderr.isTTY });
        const conveyor = new Conveyor({ ...serverOptionsFromEnv(), store: opts.store, logger: log, worker: false });
        await conveyor.start();
        const url = await listenOrClose(conveyor, { port: opts.port, host: opts.host, token: opts.token, insecure });
        log.info({ store: redact(opts.store) }, `Conveyor server on ${url}`);
        process.stdout.write(`${url}\n`);
        onShutdown(() => conveyor.close(), log);
      }),
    );
}

/** A store URL without its password, for logs. */
export function redact(store: string): string {
  return store.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}
