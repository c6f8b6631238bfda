// Overview: live throughput, latency, backlog and errors for the whole server.

import { timeChart } from '../charts.js';
import { empty, h, href, panel, replace } from '../dom.js';
import { count, ms, OPEN_STATES, perSecond, rate, STATE_COLOURS } from '../format.js';
import { live } from '../live.js';
import { backlogBar, cell, keyedTable, liveCharts, stat } from '../widgets.js';

const sum = (points, fn) => points.reduce((n, p) => n + fn(p), 0);

export function mount(root) {
  const cards = {
    throughput: stat('Throughput', 'throughput'),
    succeeded: stat('Succeeded · 5 min', 'succeeded'),
    failed: stat('Failed attempts · 5 min', 'failed'),
    run: stat('Run time p95', 'run'),
    wait: stat('Queue wait p95', 'wait'),
    open: stat('Open tasks', 'open'),
  };
  const charts = liveCharts((p) => ({ tick: p.totals, failures: p.totals.failures, runMs: p.runMs, waitMs: p.waitMs }));
  const bar = backlogBar();
  const backlogChart = timeChart({
    series: OPEN_STATES.map((s) => ({ label: s.replaceAll('_', ' ').toLowerCase(), color: STATE_COLOURS[s] })),
    format: count,
    emptyText: 'No open tasks',
  });
  let snap = null;
  const lambdas = lambdaTable(() => snap);
  const workers = workerTable(() => snap);
  const workerHint = h('span', { class: 'hint' });

  replace(
    root,
    h(
      'div',
      { class: 'page-head' },
      h('h1', { text: 'Overview' }),
      h('span', { class: 'sub', text: 'Live, one point a second, the last five minutes' }),
    ),
    h(
      'div',
      { class: 'stats' },
      Object.values(cards).map((c) => c.el),
    ),
    h(
      'div',
      { class: 'grid grid-2' },
      ...charts.panels(),
      panel('Backlog by state', bar.el, { hint: 'all lambdas, now' }),
      panel('Open tasks over time', backlogChart.el, { hint: 'since this page opened' }),
    ),
    h(
      'div',
      { class: 'grid grid-2 section-gap' },
      panel('Lambdas', lambdas.el, { flush: true, right: h('a', { href: '#/lambdas', text: 'Manage →' }) }),
      panel('Workers', workers.el, { flush: true, right: workerHint }),
    ),
    h('p', { class: 'note', text: 'Events and sharding are not configured on this server.' }),
  );

  const draw = (s) => {
    snap = s;
    const p = s.point;
    const pts = live.points;
    cards.throughput.set(rate(perSecond(p.totals.succeeded, p)), '/s', `${rate(perSecond(p.totals.started, p))}/s started`);
    cards.succeeded.set(count(sum(pts, (x) => x.totals.succeeded)), '', `${count(sum(pts, (x) => x.totals.submitted))} submitted`);
    const failed = sum(pts, (x) => x.totals.failed);
    cards.failed.set(count(failed), '', failed ? `${count(sum(pts, (x) => x.totals.failures.fatal))} fatal` : 'none', failed > 0);
    cards.run.set(ms(p.runMs?.p95), '', p.runMs ? `p50 ${ms(p.runMs.p50)} · p99 ${ms(p.runMs.p99)}` : 'no samples');
    cards.wait.set(ms(p.waitMs?.p95), '', p.waitMs ? `p50 ${ms(p.waitMs.p50)} · p99 ${ms(p.waitMs.p99)}` : 'no samples');
    const totals = {};
    for (const l of s.lambdas) for (const [st, n] of Object.entries(l.counts)) totals[st] = (totals[st] ?? 0) + n;
    const open = OPEN_STATES.reduce((n, st) => n + (totals[st] ?? 0), 0);
    const inFlight = (totals.CLAIMED ?? 0) + (totals.PROCESSING ?? 0);
    cards.open.set(count(open), '', `${count(inFlight)} in flight · ${s.workers.length} worker${s.workers.length === 1 ? '' : 's'}`);
    charts.update(pts);
    bar.set(totals);
    backlogChart.update(live.backlog.map((b) => ({ t: b.at, v: OPEN_STATES.map((st) => b.counts[st]) })));
    lambdas.set(s.lambdas);
    workers.set(s.workers);
    workerHint.textContent = `${s.workers.length} connected`;
  };
  const off = live.subscribe(draw);
  return () => {
    off();
    charts.destroy();
    backlogChart.destroy();
  };
}

function lambdaTable(current) {
  return keyedTable(['Lambda', 'Status', '#Open', '#In flight', '#Done/s', '#Run p95'], {
    key: (l) => l.name,
    emptyState: () => empty('No lambdas yet', 'Lambdas appear when a worker registers them or the server is configured with them.'),
    row: (l) => {
      const status = h('td');
      const [open, inFlight, done, p95] = [cell(true), cell(true), cell(true), cell(true)];
      return {
        cells: [h('a', { href: href('lambdas', l.name), text: l.name }), status, open, inFlight, done, p95],
        update(x) {
          const p = current().point;
          const s = p.lambdas[x.name];
          replace(
            status,
            x.paused ? h('span', { class: 'badge paused', text: 'paused' }) : h('span', { class: 'badge running', text: 'running' }),
          );
          open.textContent = count(OPEN_STATES.reduce((n, st) => n + (x.counts[st] ?? 0), 0));
          inFlight.textContent = count((x.counts.CLAIMED ?? 0) + (x.counts.PROCESSING ?? 0));
          done.textContent = rate(perSecond(s?.tick.succeeded, p));
          p95.textContent = ms(s?.runMs?.p95);
        },
      };
    },
  });
}

function workerTable(current) {
  return keyedTable(['Worker', 'Lambdas', '#Running', '#Free slots', '#Connected'], {
    key: (w) => w.workerId,
    emptyState: () => empty('No workers connected', 'Start one with `conveyor worker --server URL --lambdas FILE`, or run `conveyor dev`.'),
    row: (w) => {
      const [running, free, since] = [cell(true), cell(true), cell(true)];
      return {
        cells: [
          h('span', { class: 'mono ellipsis', title: w.workerId, text: w.workerId }),
          h(
            'div',
            { class: 'chips' },
            w.lambdas.map((l) => h('span', { class: 'chip', text: l })),
          ),
          running,
          free,
          since,
        ],
        update(x) {
          running.textContent = count(x.outstanding);
          free.textContent = count(x.credit);
          since.textContent = ms(current().point.at - x.connectedAt);
        },
      };
    },
  });
}
