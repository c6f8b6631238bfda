import type { FastifyInstance } from 'fastify';
import { checkBatchSize, type SubmitInput, submitSchema } from '../../core/submit.js';
import { taskView } from '../../core/task.js';
import { TASK_STATES } from '../../core/task-state.js';
import type { Engine } from '../../server/engine.js';
import { resource } from '../route.js';

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } };

export function taskRoutes(app: FastifyInstance, engine: Engine): void {
  resource(app, '/v1/tasks', {
    POST: {
      schema: { summary: 'Submit a task', tags: ['tasks'], body: submitSchema },
      handler: async (req, reply) => {
        const [r] = await engine.submit([req.body as SubmitInput]);
        return reply.code(r.created ? 201 : 200).send({ task: taskView(r.task) });
      },
    },
    GET: {
      schema: {
        summary: 'List tasks, newest first',
        tags: ['tasks'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            lambda: { type: 'string', minLength: 1, maxLength: 128 },
            state: { type: 'string', enum: [...TASK_STATES] },
            key: { type: 'string', minLength: 1, maxLength: 512 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            cursor: { type: 'string', maxLength: 200 },
          },
        },
      },
      handler: async (req) => {
        const q = req.query as { lambda?: string; state?: string; key?: string; limit?: number; cursor?: string };
        const { tasks, nextCursor } = await engine.list(q);
        return { tasks: tasks.map((t) => taskView(t)), nextCursor };
      },
    },
  });

  resource(app, '/v1/tasks/batch', {
    POST: {
      schema: {
        summary: 'Submit tasks, all or nothing',
        tags: ['tasks'],
        body: {
          type: 'object',
          required: ['tasks'],
          additionalProperties: false,
          properties: { tasks: { type: 'array', minItems: 1, items: submitSchema } },
        },
      },
      // Before the schema: a batch over batchMax is refused without checking each of its tasks.
      preValidation: async (req) => {
        const tasks = (req.body as { tasks?: unknown } | null)?.tasks;
        if (Array.isArray(tasks)) checkBatchSize(tasks.length, engine.config.batchMax);
      },
      handler: async (req, reply) => {
        const out = await engine.submit((req.body as { tasks: SubmitInput[] }).tasks, { batch: true });
        return reply.code(201).send({ tasks: out.map((r) => taskView(r.task)) });
      },
    },
  });

  resource(app, '/v1/tasks/:id', {
    GET: {
      schema: { summary: 'A task with its attempts', tags: ['tasks'], params: idParams },
      handler: async (req) => {
        const { task, attempts } = await engine.get((req.params as { id: string }).id, { attempts: true });
        return { task: taskView(task, attempts) };
      },
    },
  });

  resource(app, '/v1/tasks/:id/cancel', {
    POST: {
      schema: { summary: 'Cancel a task that has not started (409 otherwise)', tags: ['tasks'], params: idParams },
      handler: async (req) => ({ task: taskView(await engine.cancel((req.params as { id: string }).id)) }),
    },
  });

  resource(app, '/v1/tasks/:id/retry', {
    POST: {
      schema: { summary: 'Re-drive a FATAL_FAILURE or CANCELLED task with a fresh attempt budget', tags: ['tasks'], params: idParams },
      handler: async (req) => ({ task: taskView(await engine.retry((req.params as { id: string }).id)) }),
    },
  });
}
