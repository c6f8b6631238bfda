import type { ClaimedRow } from '../core/task.js';
import type { WorkerLink } from '../server/dispatcher.js';
import { taskFrameOf } from './codec.js';
import type { ServerFrame, WorkerFrame } from './frames.js';
import type { WorkerTransport } from './transport.js';

/**
 * A worker and a server in one process (conveyor dev, embedded use): the same frames as the
 * WebSocket protocol, handed over as objects on the microtask queue (never synchronously, so
 * neither side re-enters the other).
 */
export function inProcessPair(serverSide: (link: WorkerLink) => { onFrame(f: WorkerFrame): void; onClose(): void }): WorkerTransport {
  let toWorker: ((f: ServerFrame) => void) | null = null;
  let server: { onFrame(f: WorkerFrame): void; onClose(): void } | null = null;
  let open = false;
  const link: WorkerLink = {
    sendTasks(rows: ClaimedRow[]) {
      const tasks = rows.map((r) => ({ ...taskFrameOf(r), payload: JSON.parse(r.payload) }));
      queueMicrotask(() => toWorker?.({ type: 'tasks', tasks }));
    },
    send(frame) {
      queueMicrotask(() => toWorker?.(frame));
    },
    close() {
      open = false;
      toWorker = null;
    },
  };
  return {
    connect(onFrame, onState) {
      toWorker = onFrame;
      open = true;
      server = serverSide(link);
      queueMicrotask(() => onState('up'));
    },
    send(frame) {
      if (!open || !server) return;
      const s = server;
      queueMicrotask(() => s.onFrame(frame));
    },
    async close() {
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
