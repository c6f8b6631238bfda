import { systemClock } from '../../clock.js';
import type { LambdaConfig } from '../../core/lambda.js';
import { checkSubmitShape, newTaskOf, runAtOf, type SubmitInput } from '../../core/submit.js';
import { ConveyorError } from '../../errors.js';
import { loadQueries } from '../sql-files.js';

/** What enqueueInTransaction takes: a submit (POST /v1/tasks) without `ordered` and `dependsOn`. */
export type EnqueueInput = Omit<SubmitInput, 'ordered' | 'dependsOn'>;

export interface EnqueueOptions {
  /** The schema Conveyor's tables are in, when it is not on the connection's search_path. */
  schema?: string;
}

/**
 * A transaction of an application's own PostgreSQL client: postgres.js's `sql.begin(tx => ...)`
 * hands one over, and anything else with the same `unsafe(query, parameters)` will do.
 */
export interface SqlTransaction {
  unsafe(query: string, parameters?: any[]): PromiseLike<ReadonlyArray<Record<string, unknown>>>;
}

let statement: string | null = null;

/** JSON's escape of U+0000: \u0000 after an even number of backslashes. */
const NUL_ESCAPE = /(?<!\\)(?:\\\\)*\\u0000/;

/** What newTaskOf needs of a lambda to check a submit; its defaults are not used here. */
const UNCHECKED_LAMBDA: LambdaConfig = {
  name: '',
  timeoutMs: 1,
  maxAttempts: 1,
  backoff: { baseMs: 0, maxMs: 0, factor: 1 },
  concurrency: null,
  priority: 0,
  cron: null,
  isolation: 'inline',
};

/**
 * Creates a Conveyor task inside the caller's own transaction, so the task exists if and only if
 * that transaction commits; answers the task's id. It calls the SQL function conveyor_enqueue
 * (migration 0002), which needs the lambda registered (a worker that runs it has connected, or
 * a server is configured with it), applies the lambda's defaults, honours `idempotencyKey`
 * (answering the first task's id), and wakes the servers at commit.
 *
 * ```ts
 * import postgres from 'postgres';
 * import { enqueueInTransaction } from 'conveyor';
 * const sql = postgres(process.env.DATABASE_URL);
 * await sql.begin(async (tx) => {
 *   await tx`INSERT INTO orders (id, total) VALUES (${id}, ${total})`;
 *   await enqueueInTransaction(tx, { lambda: 'send-receipt', payload: { order: id } });
 * });
 * ```
 *
 * From another client, call the function in a transaction of your own (docs/operations.md):
 * `SELECT conveyor_enqueue('send-receipt', $1::jsonb)` with node-postgres, an ORM's raw query,
 * or psql. Not offered here: ordered tasks and dependsOn (use the HTTP API or the SDK).
 */
export async function enqueueInTransaction(tx: SqlTransaction, input: EnqueueInput, opts: EnqueueOptions = {}): Promise<string> {
  // The shape POST /v1/tasks accepts (a Date runAt as epoch ms, as Conveyor.submit takes it).
  const checked: Record<string, unknown> = { ...input, runAt: input.runAt instanceof Date ? input.runAt.getTime() : input.runAt };
  for (const k of Object.keys(checked)) if (checked[k] === undefined) delete checked[k];
  checkSubmitShape(checked);
  for (const field of ['ordered', 'dependsOn'] as const) {
    if (checked[field] !== undefined)
      throw new ConveyorError('validation_failed', `${field} is not offered by enqueueInTransaction; submit through the API instead`);
  }
  // The rest of a submit's checks, as the API makes them: a payload JSON cannot hold, a start
  // time (runAt, or now + delayMs) no Date can show. The lambda's defaults are the database's.
  const { payload } = newTaskOf(checked, UNCHECKED_LAMBDA, { now: systemClock.now(), id: '', maxPayloadBytes: Number.POSITIVE_INFINITY });
  // The payload passes through jsonb, which has no place for U+0000 (the API stores JSON text
  // and takes it): refused here by name rather than as PostgreSQL's 22P05. (An escaped
  // backslash before "u0000" is text, not the character.)
  if (NUL_ESCAPE.test(payload))
    throw new ConveyorError(
      'validation_failed',
      "payload holds a \\u0000 character, which PostgreSQL's jsonb cannot store; submit it through the API instead",
    );
  // A delay is added on the database's clock (see sql/enqueue.sql); runAt is a time of its own.
  const runAt = checked.runAt === undefined ? null : new Date(runAtOf(checked, 0, '')).toISOString();
  statement ??= loadQueries(new URL('./sql/', import.meta.url)).taskEnqueueCall;
  // An identifier cannot be a bind parameter: the schema goes into the text, quoted.
  const text = opts.schema ? statement.replace('conveyor_enqueue(', `"${opts.schema.replace(/"/g, '""')}".conveyor_enqueue(`) : statement;
  const params = [
    input.lambda,
    payload,
    runAt,
    input.delayMs ?? null,
    input.priority ?? null,
    input.idempotencyKey ?? null,
    input.collection ?? null,
    input.key ?? null,
    input.maxAttempts ?? null,
    input.timeoutMs ?? null,
  ];
  try {
    const [row] = await tx.unsafe(text, params);
    return row.id as string;
  } catch (err) {
    // CV001: conveyor_enqueue's "no such lambda" (migration 0002).
    if ((err as { code?: unknown })?.code === 'CV001') throw new ConveyorError('unknown_lambda', (err as Error).message, { cause: err });
    throw err;
  }
}
