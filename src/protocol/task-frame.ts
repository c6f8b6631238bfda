import type { TaskRow } from '../core/task.js';
import type { TaskFrame } from './frames.js';

/** A claimed row as a worker receives it; the payload stays JSON text until `parsePayload`. */
export function taskFrameOf(row: TaskRow): Omit<TaskFrame, 'payload'> {
  return {
    id: row.id,
    lambda: row.lambda,
    collection: row.collection,
    attempt: row.attempt,
    tries: row.tries,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    key: row.key,
    timeoutMs: row.timeoutMs,
  };
}

/**
 * The `tasks` frame as JSON text, with each stored payload spliced in as it is: the payload
 * was validated JSON when it was stored, so it needs no parse and re-stringify on the way out.
 */
export function tasksFrameJson(rows: TaskRow[]): string {
  let out = '{"type":"tasks","tasks":[';
  for (let i = 0; i < rows.length; i++) {
    const head = JSON.stringify(taskFrameOf(rows[i]));
    out += `${i ? ',' : ''}${head.slice(0, -1)},"payload":${rows[i].payload}}`;
  }
  return `${out}]}`;
}
