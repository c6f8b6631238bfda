import type { ClaimedRow } from '../core/task.js';
import type { ReportFrame, TaskFrame, WorkerFrame } from './frames.js';

/** A claimed row as a worker receives it; the payload stays JSON text until it is parsed. */
export function taskFrameOf(row: ClaimedRow): Omit<TaskFrame, 'payload'> {
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
export function tasksFrameJson(rows: ClaimedRow[]): string {
  let out = '{"type":"tasks","tasks":[';
  for (let i = 0; i < rows.length; i++) {
    const head = JSON.stringify(taskFrameOf(rows[i]));
    out += `${i ? ',' : ''}${head.slice(0, -1)},"payload":${rows[i].payload}}`;
  }
  return `${out}]}`;
}

/** A worker frame as JSON text; results the worker already serialised are spliced in, not stringified again. */
export function workerFrameJson(frame: WorkerFrame): string {
  if (frame.type !== 'report' || !frame.done?.some((d) => d.resultJson !== undefined)) return JSON.stringify(frame);
  const { done, ...rest } = frame as ReportFrame;
  let items = '';
  for (const d of done ?? []) {
    const result = d.resultJson ?? JSON.stringify(d.result === undefined ? null : d.result);
    items += `${items ? ',' : ''}{"id":${JSON.stringify(d.id)},"attempt":${d.attempt},"startedAt":${d.startedAt},"result":${result}}`;
  }
  const head = JSON.stringify(rest);
  return `${head.slice(0, -1)},"done":[${items}]}`;
}
