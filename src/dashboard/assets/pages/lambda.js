// One lambda (generated for every lambda, Cape-style): its live charts, settings, tasks by
// state, gates and recent failures with their errors.

import { api, query } from '../api.js';
import { empty, h, href, panel, replace, stateBadge } from '../dom.js';
import { count, json, ms, OPEN_STATES, perSecond, rate, time } from '../format.js';
import { collectionForm, drawStatus, lambdaToggle } from '../gates.js';
import { live } from '../live.js';
import { backlogBar, liveCharts, stat } from '../widgets.js';
import { drawCounts } from './lambdas.js';

const FAILURES_REFRESH_MS = 5000;
const sum = (points, fn) => points.reduce((n, p) => n + fn(p), 0);

export function mount(root, name) {
  const cards = {
    done: stat('Throughput', 'done'),
    failed: stat('Failed attempts · 5 min', 'failed'),
    run: stat('Run time p95', 'run'),
    wait: stat('Queue wait p95', 'wait'),
    open: stat('Open tasks', 'open'),
    workers: stat('Workers', 'workers'),
  };
  const charts = liveCharts((p) => p.lambdas[name] ?? null);
  const status = h('div');
  const toggle = lambdaToggle(name);
  const settings = h('div');
  const bar = backlogBar();
  const chips = h('div', { class: 'section-gap' });
  const failures = h('div', { class: 'table-wrap' }, empty('Loading…'));
  const body = h(
    'div',
    {},
    h(
      'div',
      { class: 'stats' },
      Object.values(cards).map((c) => c.el),
    ),
    h(
      'div',
      { class: 'grid grid-2' },
      ...charts.panels(),
      panel('Tasks by state', [bar.el, chips], { hint: 'click a state to list its tasks' }),
      panel('Settings', settings, { hint: 'defaults; a submitted task may override them' }),
    ),
    h(
      'div',
      { class: 'section-gap' },
      panel('Recent failures', failures, {
        flush: true,
        right: h('a', { href: `#/tasks${query({ lambda: name })}`, text: 'All tasks →' }),
      }),
    ),
  );
  const missing = h(
    'div',
    { class: 'panel' },
    empty(`No lambda named “${name}”`, 'It may not be registered yet: lambdas appear when a worker registers them.'),
  );
  const content = h('div');
  replace(
    root,
    h('div', { class: 'crumbs' }, h('a', { href: '#/lambdas', text: 'Lambdas' }), ' / '),
    h('div', { class: 'page-head' }, h('h1', { text: name }), status, h('div', { class: 'actions' }, toggle.el, collectionForm(name))),
    content,
  );

  let shownSettings = '';
  const off = live.subscribe((snap) => {
    const l = snap.lambdas.find((x) => x.name === name);
    if (!l) {
      if (content.firstChild !== missing) replace(content, missing);
      return;
    }
    if (content.firstChild !== body) replace(content, body);
    const p = snap.point;
    const s = p.lambdas[name];
    const pts = live.points;
    drawStatus(status, l);
    toggle.update(l);
    cards.done.set(rate(perSecond(s?.tick.succeeded, p)), '/s', `${count(sum(pts, (x) => x.lambdas[name]?.tick.succeeded ?? 0))} in 5 min`);
    const failed = sum(pts, (x) => x.lambdas[name]?.tick.failed ?? 0);
    cards.failed.set(count(failed), '', failed ? 'see recent failures below' : 'none', failed > 0);
    cards.run.set(ms(s?.runMs?.p95), '', s?.runMs ? `p50 ${ms(s.runMs.p50)} · p99 ${ms(s.runMs.p99)}` : 'no samples');
    cards.wait.set(ms(s?.waitMs?.p95), '', s?.waitMs ? `p50 ${ms(s.waitMs.p50)} · p99 ${ms(s.waitMs.p99)}` : 'no samples');
    const inFlight = (l.counts.CLAIMED ?? 0) + (l.counts.PROCESSING ?? 0);
    cards.open.set(count(OPEN_STATES.reduce((n, st) => n + (l.counts[st] ?? 0), 0)), '', `${count(inFlight)} in flight`);
    cards.workers.set(count(l.workers), '', l.config.concurrency ? `concurrency ${l.config.concurrency}` : 'no concurrency cap');
    charts.update(pts);
    bar.set(l.counts);
    drawCounts(chips, l);
    const text = JSON.stringify(l.config);
    if (text !== shownSettings) {
      shownSettings = text;
      replace(settings, settingsList(l.config));
    }
  });

  let stopped = false;
  const loadFailures = async () => {
    try {
      const lists = await Promise.all(
        ['FATAL_FAILURE', 'RETRIABLE_FAILURE'].map((state) => api(`/v1/tasks${query({ lambda: name, state, limit: 10 })}`)),
      );
      if (stopped) return;
      const tasks = lists
        .flatMap((r) => r.tasks)
        .sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1))
        .slice(0, 10);
      replace(failures, failureTable(tasks));
    } catch (err) {
      if (!stopped) replace(failures, empty('Could not load failures', err.message));
    }
  };
  loadFailures();
  const timer = setInterval(loadFailures, FAILURES_REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    off();
    charts.destroy();
  };
}

function settingsList(c) {
  const rows = [
    ['Timeout', ms(c.timeoutMs)],
    ['Max attempts', count(c.maxAttempts)],
    ['Backoff', json(c.backoff).replace(/\s+/g, ' ')],
    ['Concurrency', c.concurrency === null ? 'no cap' : count(c.concurrency)],
    ['Priority', String(c.priority)],
    ['Cron', c.cron ? json(c.cron).replace(/\s+/g, ' ') : '–'],
    ['Isolation', String(c.isolation)],
  ];
  return h(
    'dl',
    { class: 'kv' },
    rows.map(([k, v]) => [h('dt', { text: k }), h('dd', { class: k === 'Backoff' || k === 'Cron' ? 'mono' : null, text: v })]),
  );
}

function failureTable(tasks) {
  if (tasks.length === 0)
    return empty('No failures', 'Tasks that failed and will retry, or failed for good, show up here with their errors.');
  return h(
    'table',
    { class: 'data' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Task', 'State', 'Tries', 'When', 'Error'].map((t) => h('th', { text: t })),
      ),
    ),
    h(
      'tbody',
      {},
      tasks.map((t) =>
        h(
          'tr',
          {},
          h('td', {}, h('a', { class: 'mono', href: href('tasks', t.id), text: t.id })),
          h('td', {}, stateBadge(t.state)),
          h('td', { text: `${t.tries} of ${t.maxAttempts}` }),
          h('td', { class: 'muted', text: time(t.updatedAt) }),
          h('td', { class: 'error', text: t.error?.message ?? '–' }),
        ),
      ),
    ),
  );
}
