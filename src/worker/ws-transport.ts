import WebSocket from 'ws';
import { systemRandom } from '../clock.js';
import { backoffDelayMs } from '../core/backoff.js';
import { ConveyorError } from '../errors.js';
import type { Logger } from '../log.js';
import { workerFrameJson } from '../protocol/codec.js';
import type { ServerFrame, WorkerFrame } from '../protocol/frames.js';
import type { WorkerTransport } from '../protocol/transport.js';

/** Until a server's welcome names its heartbeat interval: the protocol's default one. */
const DEFAULT_PING_MS = 5000;

export interface WsTransportOptions {
  /** Server base URL, http(s):// or ws(s)://. */
  server: string;
  token?: string;
  log: Logger;
  /** First reconnect delay; doubles up to reconnectMaxMs, with jitter. @default 100 */
  reconnectMinMs?: number;
  /** @default 5000 */
  reconnectMaxMs?: number;
  /** The server refused the token: retrying cannot help, so the transport stops. */
  onRefused?(err: ConveyorError): void;
}

/**
 * A worker's WebSocket to a server, reconnecting with exponential backoff and jitter for as
 * long as it is not closed. Modes: connecting -> up -> down (waiting to reconnect) -> connecting
 * ... -> closed.
 */
export class WsTransport implements WorkerTransport {
  private ws: WebSocket | null = null;
  private closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingMs = DEFAULT_PING_MS;
  /** The last ping on the current connection was answered. */
  private answered = true;
  private onFrame: (f: ServerFrame) => void = () => {};
  private onState: (s: 'up' | 'down') => void = () => {};
  private readonly url: string;

  constructor(private readonly opts: WsTransportOptions) {
    this.url = `${opts.server.replace(/^http/, 'ws').replace(/\/+$/, '')}/v1/workers/connect`;
  }

  connect(onFrame: (f: ServerFrame) => void, onState: (s: 'up' | 'down') => void): void {
    this.onFrame = onFrame;
    this.onState = onState;
    this.open();
  }

  send(frame: WorkerFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(workerFrameJson(frame));
  }

  /**
   * Pings the server every `ms` from now on (the heartbeat interval its welcome names; until
   * then the protocol's default): a ping still unanswered at the next one means the connection
   * is dead, so it is dropped and opened again. A check that comes late (this process stalled)
   * judges nothing; the pong may be waiting behind it.
   */
  checkEvery(ms: number): void {
    this.pingMs = ms;
    if (this.ws?.readyState === WebSocket.OPEN) this.startPings(this.ws);
  }

  private startPings(ws: WebSocket): void {
    this.stopPings();
    const ms = this.pingMs;
    this.answered = true;
    let last = performance.now();
    this.pingTimer = setInterval(() => {
      const now = performance.now();
      const late = now - last > ms * 1.5;
      last = now;
      if (ws.readyState !== WebSocket.OPEN) return;
      if (!this.answered && !late) {
        this.opts.log.warn({ server: this.opts.server }, `the server did not answer a ping within ${ms} ms; reconnecting`);
        ws.terminate();
        return;
      }
      this.answered = false;
      ws.ping();
    }, ms);
    this.pingTimer.unref();
  }

  private stopPings(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopPings();
    if (this.timer) clearTimeout(this.timer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      ws.close(1000, 'worker stopping');
    });
  }

  private open(): void {
    if (this.closed) return;
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const ws = new WebSocket(this.url, { headers, maxPayload: 256 * 1024 * 1024, handshakeTimeout: Math.max(2 * this.pingMs, 2000) });
    this.ws = ws;
    let up = false;
    ws.on('open', () => {
      up = true;
      this.opts.log.info({ server: this.opts.server }, 'connected');
      // Checked from the start: a connection can die before the welcome too.
      ws.on('pong', () => {
        if (this.ws === ws) this.answered = true;
      });
      this.startPings(ws);
      this.onState('up');
    });
    ws.on('message', (data) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(data.toString()) as ServerFrame;
      } catch {
        this.opts.log.warn('server sent a frame that is not JSON; ignored');
        return;
      }
      // Only a welcome shows the connection works: one the server closes after the upgrade (a
      // hello refused, its store away) backs off like a refused connect, not every 100 ms.
      if (frame.type === 'welcome') this.attempt = 0;
      this.onFrame(frame);
    });
    ws.on('unexpected-response', (req, res) => {
      // ws leaves the refused request open once this event has a listener; close it ourselves
      // (no 'close' follows, so the retry is scheduled here).
      res.resume();
      req.destroy();
      if (this.ws === ws) this.ws = null;
      if (res.statusCode === 401) {
        this.closed = true;
        const why = this.opts.token ? 'the server refused the token' : 'the server requires a token (--token or CONVEYOR_TOKEN)';
        this.opts.log.error({ status: res.statusCode }, why);
        this.opts.onRefused?.(new ConveyorError('unauthorized', why));
        return;
      }
      // Anything else may pass (a server shutting down answers 503): keep trying.
      this.opts.log.warn({ status: res.statusCode, server: this.opts.server }, 'the server refused the worker connection; retrying');
      this.scheduleReconnect();
    });
    ws.on('error', (err) => {
      if (!up) this.opts.log.warn({ err: err.message, server: this.opts.server }, 'cannot reach the server; retrying');
    });
    ws.on('close', () => {
      if (this.ws === ws) {
        this.ws = null;
        this.stopPings();
      }
      if (up) {
        if (!this.closed) this.opts.log.warn('disconnected from the server; reconnecting');
        this.onState('down');
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const backoff = { baseMs: this.opts.reconnectMinMs ?? 100, maxMs: this.opts.reconnectMaxMs ?? 5000, factor: 2 };
    const delay = backoffDelayMs(++this.attempt, backoff, systemRandom);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
