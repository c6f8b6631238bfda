import type { ServerFrame, WorkerFrame } from './frames.js';

/**
 * The worker's end of a connection to a server. The controller does not know whether frames
 * travel over a WebSocket or stay in the process.
 */
export interface WorkerTransport {
  /**
   * Starts connecting; `onState('up')` fires on every (re)connection, `onState('down')` when
   * one is lost. Frames from the server go to `onFrame`.
   */
  connect(onFrame: (f: ServerFrame) => void, onState: (s: 'up' | 'down') => void): void;
  /** Sends a frame; frames sent while down are dropped (the controller keeps what matters). */
  send(frame: WorkerFrame): void;
  close(): Promise<void>;
  /**
   * Checks the connection every `ms` (the heartbeat interval); one that stopped answering is
   * closed and opened again. A cut network gives no close for minutes, long after the leases.
   */
  checkEvery?(ms: number): void;
}
