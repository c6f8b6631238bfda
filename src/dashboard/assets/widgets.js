// Pieces shared by the pages: stat cards, the backlog bar, the live charts of one scope.

import { timeChart } from './charts.js';
import { h, panel, replace } from './dom.js';
import { count, ms, perSecond, STATE_COLOURS, STATES } from './format.js';

/** A stat card; answers { el, set(value, unit, foot, bad) }. */
export function stat(label, key) {
  const value = h('div', { class: 'value', text: '–' });
  const foot = h('div', { class: 'foot', text: '\u00a0' });
  const el = h('div', { class: 'panel stat', dataset: { stat: key } }, h('div', { class: 'label', text: label }), value, foot);
  return {
    el,
    set(v, unit, footText, bad = false) {
      replace(value, String(v), unit ? h('span', { class: 'unit', text: unit }) : null);
      foot.textContent = footText || '\u00a0';
      el.classList.toggle('bad', bad);
    },
  };
}

/** Counts by state as a proportional bar with a legend; answers { el, set(counts) }. */
export function backlogBar(states = STATES) {
  const bar = h('div', { class: 'bar', role: 'img', 'aria-label': 'Tasks by state' });
  const legend = h('div', { class: 'legend' });
  const el = h('div', {}, bar, legend);
  return {
    el,
    set(counts) {
      const total = states.reduce((n, s) => n + (counts[s] ?? 0), 0);
      bar.replaceChildren();
      for (const s of states) {
        const n = counts[s] ?? 0;
        if (!n) continue;
        const seg = h('span', { class: `st-${s}`, title: `${s}: ${n}` });
        seg.style.width = `${(100 * n) / total}%`;
        bar.append(seg);
      }
      replace(
        legend,
        states.map((s) =>
          h(
            'span',
            { class: 'item', dataset: { state: s } },
            h('span', { class: `swatch st-${s}` }),
            s.replaceAll('_', ' ').toLowerCase(),
            h('b', { text: count(counts[s] ?? 0) }),
          ),
        ),
      );
    },
  };
}

const pct = (p, k) => (p ? p[k] : null);

/**
 * The four live charts of one scope (all lambdas, or one): throughput, errors, run time and
 * queue wait. `pick(point)` answers { tick, failures?, runMs, waitMs } or null.
 */
export function liveCharts(pick) {
  const charts = {
    throughput: timeChart({
      series: [
        { label: 'succeeded/s', color: '#16a34a', fill: true },
        { label: 'started/s', color: '#4f46e5' },
        { label: 'submitted/s', color: '#94a3b8' },
      ],
      format: (v) => (v < 10 ? String(Math.round(v * 10) / 10) : count(v)),
    }),
    errors: timeChart({
      series: [
        { label: 'error', color: '#f59e0b' },
        { label: 'timeout', color: '#fb923c' },
        { label: 'lost', color: '#a855f7' },
        { label: 'fatal', color: '#dc2626' },
      ],
      stacked: true,
      format: (v) => (v < 10 ? String(Math.round(v * 10) / 10) : count(v)),
      emptyText: 'No failures',
    }),
    run: timeChart({
      series: [
        { label: 'p50', color: '#60a5fa' },
        { label: 'p95', color: '#4f46e5', fill: true },
        { label: 'p99', color: '#be185d' },
      ],
      format: ms,
    }),
    wait: timeChart({
      series: [
        { label: 'p50', color: '#5eead4' },
        { label: 'p95', color: '#0d9488', fill: true },
        { label: 'p99', color: '#b45309' },
      ],
      format: ms,
    }),
  };
  return {
    charts,
    /** The four charts in their panels, as both the overview and a lambda's page show them. */
    panels() {
      return [
        panel('Throughput', charts.throughput.el, { hint: 'attempts per second' }),
        panel('Errors over time', charts.errors.el, { hint: 'failed attempts per second, by kind' }),
        panel('Run time', charts.run.el, { hint: 'handler start to finish, last 10 s' }),
        panel('Queue wait', charts.wait.el, { hint: 'due to claimed, last 10 s' }),
      ];
    },
    update(points) {
      const rows = points.map((p) => ({ p, s: pick(p) }));
      const at = (fn) => rows.map(({ p, s }) => ({ t: p.at, v: fn(s, p) }));
      charts.throughput.update(
        at((s, p) => [perSecond(s?.tick.succeeded, p), perSecond(s?.tick.started, p), perSecond(s?.tick.submitted, p)]),
      );
      charts.errors.update(
        at((s, p) => {
          const f = s?.failures;
          return f ? [f.error, f.timeout, f.lost, f.fatal].map((n) => perSecond(n, p)) : [0, 0, 0, 0];
        }),
      );
      charts.run.update(at((s) => [pct(s?.runMs, 'p50'), pct(s?.runMs, 'p95'), pct(s?.runMs, 'p99')]));
      charts.wait.update(at((s) => [pct(s?.waitMs, 'p50'), pct(s?.waitMs, 'p95'), pct(s?.waitMs, 'p99')]));
    },
    destroy() {
      for (const c of Object.values(charts)) c.destroy();
    },
  };
}

/** Colour of a state for canvas drawing. */
export const colourOf = (state) => STATE_COLOURS[state] ?? '#8a93a3';

/**
 * A table whose rows are kept by key and updated in place each tick (so a link or a button is
 * not replaced under the pointer, and a half-typed input keeps its text). `columns`: header
 * labels (a label starting with '#' is right-aligned numbers). `row(item)` answers
 * { cells: [node...], update(item) } once per key.
 */
export function keyedTable(columns, { key, row, emptyState }) {
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', { class: c.startsWith('#') ? 'num' : null, text: c.replace(/^#/, '') })),
      ),
    ),
    tbody,
  );
  const el = h('div', { class: 'table-wrap' });
  const rows = new Map();
  return {
    el,
    set(items) {
      if (items.length === 0) {
        rows.clear();
        replace(el, emptyState());
        return;
      }
      if (el.firstChild !== table) replace(el, table);
      const seen = new Set();
      items.forEach((item, i) => {
        const k = key(item);
        seen.add(k);
        let r = rows.get(k);
        if (!r) {
          const built = row(item);
          r = {
            tr: h(
              'tr',
              { dataset: { key: k } },
              built.cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))),
            ),
            update: built.update,
          };
          rows.set(k, r);
        }
        r.update(item);
        if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] ?? null);
      });
      for (const [k, r] of rows) {
        if (!seen.has(k)) {
          r.tr.remove();
          rows.delete(k);
        }
      }
    },
  };
}

/** A <td> whose text is set later; `num` right-aligns it. */
export function cell(num = false) {
  return h('td', { class: num ? 'num' : null });
}
