import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onCleanup } from '../helpers.js';

export { freePort } from '../free-port.js';

export const BIN = fileURLToPath(new URL('../../bin/conveyor.js', import.meta.url));

export interface Proc {
  child: ChildProcess;
  /** Resolves with the first stdout line (the URL for dev and server). */
  ready: Promise<string>;
  exited: Promise<number | null>;
  stderr(): string;
}

/**
 * Starts `conveyor <args>` and waits for its first stdout line. The process is SIGKILLed after
 * the test, whatever happened, so a failing test never leaves servers or workers behind.
 */
export function conveyor(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, CONVEYOR_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
    if (err.length > 100_000) err = err.slice(-50_000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl).trim());
    });
    void exited.then((code) => reject(new Error(`conveyor ${args[0]} exited (${code}) before it was ready:\n${err}`)));
  });
  return { child, ready, exited, stderr: () => err };
}

export interface Interval {
  id: string;
  attempt: number;
  pid: number;
  start: number;
  end: number | null;
}

/** Reads the recorder's log into execution intervals (an interval with no end was cut short by a kill). */
export function readIntervals(file: string): Interval[] {
  const open = new Map<string, Interval>();
  const out: Interval[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [kind, id, attempt, pid, at] = line.split(' ');
    if (!kind) continue;
    const k = `${id} ${attempt} ${pid}`;
    if (kind === 'start') {
      const iv = { id, attempt: Number(attempt), pid: Number(pid), start: Number(at), end: null };
      open.set(k, iv);
      out.push(iv);
    } else {
      const iv = open.get(k);
      if (iv) iv.end = Number(at);
    }
  }
  return out;
}

/**
 * Pairs of intervals of one task that overlap in time. An interval cut by a kill ends when
 * its process died (deaths: pid -> time of SIGKILL).
 */
export function overlaps(intervals: Interval[], deaths: Map<number, number>): Array<[Interval, Interval]> {
  const byTask = new Map<string, Interval[]>();
  for (const iv of intervals) byTask.set(iv.id, [...(byTask.get(iv.id) ?? []), iv]);
  const bad: Array<[Interval, Interval]> = [];
  const endOf = (iv: Interval) => iv.end ?? deaths.get(iv.pid) ?? Number.POSITIVE_INFINITY;
  for (const list of byTask.values()) {
    list.sort((a, b) => a.start - b.start);
    for (let i = 1; i < list.length; i++) if (list[i].start < endOf(list[i - 1])) bad.push([list[i - 1], list[i]]);
  }
  return bad;
}
