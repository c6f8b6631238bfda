import type { FailureKind } from '../core/failure.js';
import type { Gate } from '../core/gate.js';
import type { LambdaConfig } from '../core/lambda.js';

/**
 * The worker protocol: JSON frames between a server and a worker, over a WebSocket for
 * remote workers or handed over as objects in one process. docs/protocol.md describes each
 * frame for implementers in other languages. Flow control is by credit: the worker grants
 * places (hello.capacity, then report.credit as places free up) and the server never has
 * more tasks out to a worker than it was granted.
 */
export const PROTOCOL_VERSION = 1;

/** One attempt, named by its task and fencing token. */
export interface AttemptRef {
  id: string;
  attempt: number;
}

/** A task as a worker receives it. */
export interface TaskFrame {
  id: string;
  lambda: string;
  collection: string | null;
  attempt: number;
  tries: number;
  maxAttempts: number;
  priority: number;
  key: string | null;
  timeoutMs: number;
  payload: unknown;
}

export interface StartedItem extends AttemptRef {
  /** Epoch ms when the executor started the handler. */
  at: number;
}

export interface DoneItem extends AttemptRef {
  startedAt: number;
  result: unknown;
  /** In-process only: the result already as JSON text (the worker serialised it to check it). */
  resultJson?: string;
}

export interface FailedItem extends AttemptRef {
  startedAt: number | null;
  kind: Exclude<FailureKind, 'lost'>;
  error: { message: string; name?: string; code?: string; stack?: string };
  /** For kind 'snoozed': run again after this many ms. */
  snoozeMs?: number;
}

// worker -> server

export interface HelloFrame {
  type: 'hello';
  protocol: number;
  /** Stable across reconnects of one worker process. */
  workerId: string;
  lambdas: LambdaConfig[];
  /** Places the worker grants at first: concurrency plus its local buffer. */
  capacity: number;
  concurrency: number;
  /**
   * The attempts the worker still holds from an earlier session (a reconnect), with their
   * lambdas: the server counts them against the lambdas' caps from the start.
   */
  held?: HeldItem[];
}

export interface HeldItem extends AttemptRef {
  lambda: string;
}

/** Everything a worker has to say since its last report, in one frame. */
export interface ReportFrame {
  type: 'report';
  /** Places freed since the last report. */
  credit?: number;
  started?: StartedItem[];
  done?: DoneItem[];
  failed?: FailedItem[];
  /** Claimed tasks given back unstarted (draining, gate closed). */
  released?: AttemptRef[];
  /**
   * Asks for a report_ack once the server has written this report (servers whose welcome says
   * reportAcks). A worker keeps the outcomes of an unanswered report and sends them again
   * after a reconnect, so a dropped connection does not throw finished work away.
   */
  seq?: number;
}

export interface HeartbeatFrame {
  type: 'heartbeat';
  seq: number;
  /** Every attempt the worker holds (buffered or running). */
  held: AttemptRef[];
}

export interface ByeFrame {
  type: 'bye';
}

export type WorkerFrame = HelloFrame | ReportFrame | HeartbeatFrame | ByeFrame;

// server -> worker

export interface WelcomeFrame {
  type: 'welcome';
  protocol: number;
  sessionId: string;
  heartbeatMs: number;
  leaseMs: number;
  gates: Gate[];
  /** The server answers a report that carries a seq with report_ack. */
  reportAcks?: boolean;
}

export interface TasksFrame {
  type: 'tasks';
  tasks: TaskFrame[];
}

export interface HeartbeatAckFrame {
  type: 'heartbeat_ack';
  seq: number;
  /** Attempts the worker no longer holds: abort them. */
  lost: AttemptRef[];
}

/** Every report of this connection up to this seq is written (its refusals were sent first). */
export interface ReportAckFrame {
  type: 'report_ack';
  seq: number;
}

/** Reports the server refused (the attempt was no longer held); running handlers of these must stop. */
export interface RefusedFrame {
  type: 'refused';
  items: AttemptRef[];
  reason: 'stale_attempt';
}

export interface GatesFrame {
  type: 'gates';
  gates: Gate[];
}

export interface ErrorFrame {
  type: 'error';
  error: { code: string; message: string };
}

export type ServerFrame = WelcomeFrame | TasksFrame | HeartbeatAckFrame | ReportAckFrame | RefusedFrame | GatesFrame | ErrorFrame;
