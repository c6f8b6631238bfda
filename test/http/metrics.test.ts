import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ConveyorMetrics } from '../../src/http/metrics.js';
import type { LambdaDefinition } from '../../src/index.js';
import { sleep, startConveyor, until } from '../helpers.js';

// A strict reader of the Prometheus text format 0.0.4: every sample must belong to a family
// declared by # TYPE before it, names and labels must be well-formed, label values correctly
// escaped, no series twice. Not a library: the npm parsers tried (parse-prometheus-text-format
// 1.1.1, exposition 1.2.0) merge the series of a labelled histogram into one and drop their
// labels, which is exactly what this test must see.

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<MetricType, string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseValue(text: string, line: number): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  for (;;) {
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without '='`);
    const key = text.slice(i, eq);
    if (!LABEL.test(key)) throw new Error(`line ${line}: bad label name ${JSON.stringify(key)}`);
    if (key in labels) throw new Error(`line ${line}: label ${key} twice`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value not quoted`);
    let value = '';
    let j = eq + 2;
    for (; ; j++) {
      const ch = text[j];
      if (ch === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`line ${line}: bad escape \\${next}`);
      } else value += ch;
    }
    labels[key] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`line ${line}: expected ',' or '}' after a label`);
  }
}

function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const help = new Map<string, string>();
  expect(text.endsWith('\n')).toBe(true);
  text.split('\n').forEach((raw, idx) => {
    const line = idx + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // other comments are allowed
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      if (kind === 'HELP') help.set(name, rest);
      else {
        if (families.has(name)) throw new Error(`line ${line}: TYPE of ${name} twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`line ${line}: bad type ${rest}`);
        families.set(name, { name, type: rest as MetricType, help: help.get(name) ?? '', samples: [] });
      }
      return;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`line ${line}: no sample name`);
    const name = raw.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`line ${line}: bad sample name ${name}`);
    let rest = raw.slice(nameEnd);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(' ');
    if (parts.length < 1 || parts.length > 2 || !rest.startsWith(' ')) throw new Error(`line ${line}: expected ' value [timestamp]'`);
    const value = parseValue(parts[0], line);
    const family = [...families.values()].find((f) => SUFFIXES[f.type].some((s) => f.name + s === name));
    if (!family) throw new Error(`line ${line}: sample ${name} has no # TYPE before it`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`line ${line}: series ${key} twice`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Buckets grow with `le`, never decrease, and the +Inf bucket equals _count. */
function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const samples of series.values()) {
    const buckets = samples.filter((s) => s.name.endsWith('_bucket'));
    let last = -1;
    let lastValue = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le, 0);
      expect(le).toBeGreaterThan(last);
      expect(b.value).toBeGreaterThanOrEqual(lastValue);
      last = le;
      lastValue = b.value;
    }
    expect(last).toBe(Number.POSITIVE_INFINITY);
    expect(samples.find((s) => s.name.endsWith('_count'))?.value).toBe(lastValue);
    expect(samples.some((s) => s.name.endsWith('_sum'))).toBe(true);
  }
}

/** The value of one series (labels must match exactly on the given keys). */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

const lambdas: LambdaDefinition[] = [
  { name: 'echo', handler: async (p) => p },
  {
    name: 'flaky',
    maxAttempts: 3,
    backoff: { baseMs: 10, maxMs: 20 },
    handler: async (_p, ctx) => {
      if (ctx.task.attempt === 1) throw new Error('first attempt fails');
      return 'ok';
    },
  },
];

async function serve(token?: string) {
  const c = await startConveyor({ lambdas });
  // The first count read starts the SQLite reader thread, which under the test runner loads the
  // sources through tsx (up to 1.7 s on a busy machine, near the scrape's 2 s store wait).
  await c.lambdas();
  const url = await c.listen({ port: 0, token });
  const scrape = async (headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}) => {
    const res = await fetch(`${url}/metrics`, { headers });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  return { c, url, scrape };
}

describe('GET /metrics', () => {
  it('counts attempts, outcomes, waits and run times per lambda, and backlog by state', async () => {
    const { c, scrape } = await serve();
    const echo = await Promise.all([1, 2, 3, 4, 5].map((n) => c.submit('echo', n)));
    const flaky = await Promise.all([1, 2].map((n) => c.submit('flaky', n)));
    for (const t of [...echo, ...flaky]) await c.waitFor(t.id);

    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = parseExposition(res.text);

    expect(m.get('conveyor_attempts_ended_total')?.type).toBe('counter');
    expect(value(m, 'conveyor_attempts_ended_total', { lambda: 'echo', outcome: 'success' })).toBe(5);
    expect(value(m, 'conveyor_attempts_ended_total', { lambda: 'flaky', outcome: 'error' })).toBe(2);
    expect(value(m, 'conveyor_attempts_ended_total', { lambda: 'flaky', outcome: 'success' })).toBe(2);
    expect(value(m, 'conveyor_attempts_started_total', { lambda: 'echo' })).toBe(5);
    expect(value(m, 'conveyor_attempts_started_total', { lambda: 'flaky' })).toBe(4);
    expect(value(m, 'conveyor_tasks_submitted_total', { lambda: 'echo' })).toBe(5);

    expect(value(m, 'conveyor_store_up')).toBe(1);
    expect(m.get('conveyor_queue_wait_seconds')?.type).toBe('histogram');
    expect(m.get('conveyor_run_seconds')?.type).toBe('histogram');
    expect(value(m, 'conveyor_queue_wait_seconds_count', { lambda: 'echo' })).toBe(5);
    // first claims only: a retry is due when its backoff ends, not at runAt
    expect(value(m, 'conveyor_queue_wait_seconds_count', { lambda: 'flaky' })).toBe(2);
    expect(value(m, 'conveyor_run_seconds_count', { lambda: 'echo' })).toBe(5);
    expect(value(m, 'conveyor_run_seconds_count', { lambda: 'flaky' })).toBe(4);
    expect(value(m, 'conveyor_run_seconds_bucket', { lambda: 'echo', le: '+Inf' })).toBe(5);

    // Backlog and in-flight come from counts the engine caches for up to 2 s; a periodic
    // sweep may sit in the write queue at any scrape, so the queue is read once it drained.
    const settled = await until(async () => {
      const x = parseExposition((await scrape()).text);
      const drained = value(x, 'conveyor_group_commit_pending') === 0;
      return value(x, 'conveyor_tasks', { lambda: 'echo', state: 'SUCCESS' }) === 5 && drained ? x : null;
    }, 5000);
    expect(settled.get('conveyor_tasks')?.type).toBe('gauge');
    for (const state of ['NEW', 'ENQUEUED', 'CLAIMED', 'PROCESSING', 'RETRIABLE_FAILURE', 'FATAL_FAILURE', 'CANCELLED']) {
      expect(value(settled, 'conveyor_tasks', { lambda: 'echo', state })).toBe(0);
    }
    expect(value(settled, 'conveyor_tasks', { lambda: 'flaky', state: 'SUCCESS' })).toBe(2);
    expect(value(settled, 'conveyor_tasks_in_flight', { lambda: 'echo' })).toBe(0);
    expect(value(settled, 'conveyor_lambda_paused', { lambda: 'echo' })).toBe(0);
    expect(value(settled, 'conveyor_lambda_workers', { lambda: 'echo' })).toBe(1);
    expect(value(settled, 'conveyor_workers_connected')).toBe(1);
    expect(value(settled, 'conveyor_worker_tasks_outstanding')).toBe(0);
    expect(settled.get('conveyor_group_commit_pending')?.type).toBe('gauge');
    expect(value(settled, 'conveyor_reports_refused_total')).toBe(0);
    // Process metrics from prom-client's default collectors.
    expect(settled.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    expect(settled.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(settled.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge');

    // The ingest queue, where the engine has one.
    if ('ingest' in c.engine) {
      expect(value(settled, 'conveyor_ingest_queue_depth')).toBe(0);
      expect(value(settled, 'conveyor_ingest_shed_total')).toBe(0);
    }

    await c.pause('echo');
    const paused = parseExposition((await scrape()).text);
    expect(value(paused, 'conveyor_lambda_paused', { lambda: 'echo' })).toBe(1);
  });

  it('follows the token rule of the /v1 routes', async () => {
    const { scrape } = await serve('s3cret');
    const denied = await scrape({});
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(JSON.parse(denied.text)).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    expect((await scrape({ authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(parseExposition(ok.text).has('conveyor_workers_connected')).toBe(true);
  });

  it('keeps one registry per server, so two servers in one process do not clash', async () => {
    const a = await serve();
    const b = await serve();
    const t = await a.c.submit('echo', 1);
    await a.c.waitFor(t.id);
    const ma = parseExposition((await a.scrape()).text);
    const mb = parseExposition((await b.scrape()).text);
    expect(value(ma, 'conveyor_attempts_ended_total', { lambda: 'echo', outcome: 'success' })).toBe(1);
    expect(value(mb, 'conveyor_attempts_ended_total', { lambda: 'echo', outcome: 'success' })).toBeUndefined();
    expect(mb.has('process_cpu_user_seconds_total')).toBe(true);
  });

  it('takes the ingest queue depth and shed count when ingest attaches', async () => {
    const c = await startConveyor({ lambdas });
    const metrics = new ConveyorMetrics(c.engine);
    let shed = 3;
    metrics.attachIngest({ queueDepth: () => 7, shedTotal: () => shed });
    let m = parseExposition(await metrics.render());
    expect(m.get('conveyor_ingest_queue_depth')?.type).toBe('gauge');
    expect(value(m, 'conveyor_ingest_queue_depth')).toBe(7);
    expect(m.get('conveyor_ingest_shed_total')?.type).toBe('counter');
    expect(value(m, 'conveyor_ingest_shed_total')).toBe(3);
    shed = 5;
    m = parseExposition(await metrics.render());
    expect(value(m, 'conveyor_ingest_shed_total')).toBe(5);
    metrics.close();
    expect(c.engine.events.listenerCount('attempts')).toBe(0);
  });

  it('lets a closed metrics object go: nothing process-wide keeps its registry (and its engine) alive', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const c = await startConveyor({ lambdas });
    let metrics: ConveyorMetrics | null = new ConveyorMetrics(c.engine);
    expect(parseExposition(await metrics.render()).has('nodejs_gc_duration_seconds')).toBe(true);
    const registry = new WeakRef(metrics.registry);
    metrics.close();
    metrics = null;
    await until(
      async () => {
        gc();
        await sleep(20);
        return registry.deref() === undefined;
      },
      5000,
      'the closed registry to be collected',
    );
  });

  it('rejects malformed exposition text (the parser is strict)', () => {
    expect(() => parseExposition('x 1\n')).toThrow(/no # TYPE/);
    expect(() => parseExposition('# TYPE x counter\nx{a="b} 1\n')).toThrow(/unterminated/);
    expect(() => parseExposition('# TYPE x counter\nx{a="\\q"} 1\n')).toThrow(/bad escape/);
    expect(() => parseExposition('# TYPE x gauge\nx 1\nx 2\n')).toThrow(/twice/);
    expect(() => parseExposition('# TYPE x gauge\nx one\n')).toThrow(/bad value/);
  });
});
