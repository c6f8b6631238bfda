import { Command, Option } from 'commander';
import type { SubmitInput } from '../../core/submit.js';
import { action, clientOf, intArg, jsonArg, listOf, printJson, withServer } from '../common.js';

export function submitCommand(): Command {
  return withServer(
    new Command('submit')
      .description('submit a task: conveyor submit LAMBDA [JSON]')
      .argument('<lambda>', 'lambda to run')
      .argument('[json]', 'payload as JSON', undefined)
      .addOption(new Option('--priority <n>', 'higher starts first').argParser(intArg(-(2 ** 31), 2 ** 31 - 1)))
      .option('--run-at <time>', 'not before this ISO 8601 time (or epoch ms)')
      .addOption(new Option('--delay <ms>', 'not before now + ms').argParser(intArg(0, 2 ** 52)))
      .option('--key <key>', 'task key')
      .option('--ordered', 'with --key: run after earlier tasks of the same key ended')
      .option('--collection <name>', 'collection inside the lambda (gated separately)')
      .option('--idempotency-key <key>', 'a repeated submit with this key returns the first task')
      .addOption(new Option('--max-attempts <n>', 'attempts before FATAL_FAILURE').argParser(intArg(1, 1000)))
      .addOption(new Option('--timeout <ms>', 'abort an attempt after this long').argParser(intArg(1, 2 ** 31 - 1)))
      .option('--depends-on <ids...>', 'start after these tasks succeeded')
      .option('--wait', 'wait until the task ends and print it; exit status 1 unless it ended in SUCCESS'),
  ).action(
    action(async (lambda: string, json: string | undefined, opts) => {
      const input: SubmitInput = { lambda };
      const payload = jsonArg(json, 'the payload');
      if (payload !== undefined) input.payload = payload;
      if (opts.priority !== undefined) input.priority = opts.priority;
      if (opts.runAt !== undefined) input.runAt = /^\d+$/.test(opts.runAt) ? Number(opts.runAt) : opts.runAt;
      if (opts.delay !== undefined) input.delayMs = opts.delay;
      if (opts.key !== undefined) input.key = opts.key;
      if (opts.ordered) input.ordered = true;
      if (opts.collection !== undefined) input.collection = opts.collection;
      if (opts.idempotencyKey !== undefined) input.idempotencyKey = opts.idempotencyKey;
      if (opts.maxAttempts !== undefined) input.maxAttempts = opts.maxAttempts;
      if (opts.timeout !== undefined) input.timeoutMs = opts.timeout;
      const deps = listOf(opts.dependsOn);
      if (deps.length) input.dependsOn = deps;
      const client = clientOf(opts);
      const task = await client.submit(input);
      if (!opts.wait) return printJson(task);
      const ended = await client.waitFor(task.id, { timeoutMs: 24 * 3600 * 1000 });
      printJson(ended);
      // Scripts can branch on the outcome (`conveyor submit ... --wait && next-step`).
      if (ended.state !== 'SUCCESS') process.exitCode = 1;
    }),
  );
}

export function getCommand(): Command {
  return withServer(new Command('get').description('show a task with its attempts').argument('<id>', 'task id')).action(
    action(async (id: string, opts) => printJson(await clientOf(opts).get(id))),
  );
}

export function cancelCommand(): Command {
  return withServer(new Command('cancel').description('cancel a task that has not started').argument('<id>', 'task id')).action(
    action(async (id: string, opts) => printJson(await clientOf(opts).cancel(id))),
  );
}

export function retryCommand(): Command {
  return withServer(new Command('retry').description('re-drive a FATAL_FAILURE or CANCELLED task').argument('<id>', 'task id')).action(
    action(async (id: string, opts) => printJson(await clientOf(opts).retry(id))),
  );
}

export function listCommand(): Command {
  return withServer(
    new Command('list')
      .description('list tasks, newest first')
      .option('--lambda <name>', 'only this lambda')
      .option('--state <state>', 'only this state')
      .option('--key <key>', 'only this key')
      .addOption(new Option('--limit <n>', 'page size').argParser(intArg(1, 1000)).default(50))
      .option('--cursor <cursor>', 'next page (nextCursor of the previous one)'),
  ).action(
    action(async (opts) => {
      printJson(
        await clientOf(opts).list({ lambda: opts.lambda, state: opts.state, key: opts.key, limit: opts.limit, cursor: opts.cursor }),
      );
    }),
  );
}
