export { type ClientOptions, ConveyorClient } from './client/http-client.js';
export type { ServerOptions, WorkerOptions } from './config/options.js';
export { Conveyor, type ConveyorOptions, type SubmitOptions } from './conveyor.js';
export { type CronSpec, defineLambda, type Handler, type LambdaDefinition, type TaskContext, type TaskInfo } from './core/lambda.js';
export type { SubmitInput } from './core/submit.js';
export type { AttemptView, TaskError, TaskView } from './core/task.js';
export type { TaskState } from './core/task-state.js';
export { ConveyorError, type ErrorCode, FatalError, RetryAfter, retryAfter } from './errors.js';
export {
  type EnqueueInput,
  type EnqueueOptions,
  enqueueInTransaction,
  type SqlTransaction,
} from './store/postgres/transactional-enqueue.js';
export { type RemoteWorkerOptions, Worker } from './worker/worker.js';
