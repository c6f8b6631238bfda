import { systemRandom } from '../clock.js';
import { backoffDelayMs } from '../core/backoff.js';
import type { ClaimedRow } from '../core/task.js';
import type { WorkerLink } from '../server/dispatcher.js';
import { taskFrameOf } from './codec.js';
import type { ServerFrame, WorkerFrame } from './frames.js';
import type { WorkerTransport } from './transport.js';

/** Waits before the worker side connects again after the server side closed the link: 100 ms, doubling to 5 s (as a remote worker's). */
const RECONNECT = { baseMs: 100, maxMs: 5000, factor: 2 };

/**
 * A worker and a server in one process (conveyor dev, embedded use): the same frames as the
 * WebSocket protocol, handed over as objects on the microtask queue (never synchronously, so
 * neither side re-enters the other). A link the server closes (a hello it could not take, the
 * store away for a moment) goes down for the worker, which connects again after a backoff, as
 * a remote worker does.
 */
export function inProcessPair(serverSide: (link: WorkerLink) => { onFrame(f: WorkerFrame): void; onClose(): void }): WorkerTransport {
  let toWorker: ((f: ServerFrame) => void) | null = null;
  let server: { onFrame(f: WorkerFrame): void; onClose(): void } | null = null;
  let open = false;
  let closed = false;
  let retries = 0;
  let retry: NodeJS.Timeout | null = null;
  let worker: { onFrame(f: ServerFrame): void; onState(s: 'up' | 'down'): void } | null = null;
  const link: WorkerLink = {
    sendTasks(rows: ClaimedRow[]) {
      const tasks = rows.map((r) => ({ ...taskFrameOf(r), payload: JSON.parse(r.payload) }));
      queueMicrotask(() => toWorker?.({ type: 'tasks', tasks }));
    },
    send(frame) {
      if (frame.type === 'welcome') retries = 0; // the link works: a later close backs off afresh
      queueMicrotask(() => toWorker?.(frame));
    },
    close() {
      if (!open) return;
      open = false;
      const s = server;
      server = null;
      // After the frames already queued (an error frame saying why), as a socket closes after its writes.
      queueMicrotask(() => {
        toWorker = null;
        s?.onClose();
        worker?.onState('down');
        if (closed) return;
        const delay = backoffDelayMs(++retries, RECONNECT, systemRandom);
        retry = setTimeout(() => {
          retry = null;
          if (!closed) connect();
        }, delay);
        retry.unref?.();
      });
    },
  };
  const connect = () => {
    if (!worker) return;
    toWorker = worker.onFrame;
    open = true;
    server = serverSide(link);
    const w = worker;
    queueMicrotask(() => w.onState('up'));
  };
  return {
    connect(onFrame, onState) {
      worker = { onFrame, onState };
      connect();
    },
    send(frame) {
      if (!open || !server) return;
      const s = server;
      queueMicrotask(() => s.onFrame(frame));
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      retry = null;
      if (!open) return;
      open = false;
      const s = server;
      server = null;
      // After the frames already queued (the last report, bye), like a socket closing after its writes.
      queueMicrotask(() => {
        toWorker = null;
        s?.onClose();
      });
    },
  };
}
