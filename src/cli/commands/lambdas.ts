import { Command, Option } from 'commander';
import { action, clientOf, printJson, withServer } from '../common.js';

export function pauseCommand(): Command {
  return withServer(
    new Command('pause')
      .description('pause a lambda (or one collection): its due tasks wait until resume')
      .argument('<lambda>', 'lambda name')
      .option('--collection <name>', 'pause only this collection')
      .addOption(
        new Option('--mode <mode>', 'pause keeps tasks; drop cancels them as they come due').choices(['pause', 'drop']).default('pause'),
      ),
  ).action(
    action(async (lambda: string, opts) => printJson(await clientOf(opts).pause(lambda, { collection: opts.collection, mode: opts.mode }))),
  );
}

export function resumeCommand(): Command {
  return withServer(
    new Command('resume')
      .description('resume a paused lambda (or one collection)')
      .argument('<lambda>', 'lambda name')
      .option('--collection <name>', 'resume only this collection'),
  ).action(action(async (lambda: string, opts) => printJson(await clientOf(opts).resume(lambda, { collection: opts.collection }))));
}

export function lambdasCommand(): Command {
  return withServer(new Command('lambdas').description('list lambdas with their settings, gates, task counts and workers')).action(
    action(async (opts) => printJson(await clientOf(opts).lambdas())),
  );
}
