import type { TaskError } from '../../core/task.js';
import type { TaskFrame } from '../../protocol/frames.js';

/** Messages between an isolate host (the worker) and the runner in a thread or child process. */
export type ToRunner =
  | { type: 'run'; key: string; frame: TaskFrame }
  | { type: 'abort'; key: string; name: string; message: string }
  | { type: 'heartbeat_ack'; req: number; error: string | null };

export type FromRunner =
  | { type: 'ready' }
  | { type: 'load_failed'; message: string }
  | { type: 'done'; key: string; resultJson: string }
  | { type: 'failed'; key: string; error: TaskError; fatal: boolean; snoozeMs: number | null }
  | { type: 'heartbeat'; key: string; req: number }
  | { type: 'log'; key: string; level: 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

/** What a runner needs to find its lambda: the module file and the lambda's name. */
export interface RunnerSpec {
  module: string;
  lambda: string;
}
