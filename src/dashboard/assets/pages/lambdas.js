// Lambdas: every lambda with its status, tasks by state, workers and rate; pause and resume
// the whole lambda or one collection.

import { query } from '../api.js';
import { empty, h, href, panel, replace } from '../dom.js';
import { count, perSecond, rate, STATES } from '../format.js';
import { collectionForm, drawStatus, lambdaToggle } from '../gates.js';
import { live } from '../live.js';
import { cell, keyedTable } from '../widgets.js';

export function mount(root) {
  let snap = null;
  const table = keyedTable(['Lambda', 'Status', 'Tasks by state', '#Workers', '#Done/s', 'Actions'], {
    key: (l) => l.name,
    emptyState: () => empty('No lambdas yet', 'Lambdas appear when a worker registers them or the server is configured with them.'),
    row: (l) => {
      const status = h('td');
      const states = h('td');
      const [workers, done] = [cell(true), cell(true)];
      const toggle = lambdaToggle(l.name);
      return {
        cells: [
          h('a', { href: href('lambdas', l.name), text: l.name, class: 'strong' }),
          status,
          states,
          workers,
          done,
          h('div', { class: 'row-actions' }, toggle.el, collectionForm(l.name)),
        ],
        update(x) {
          drawStatus(status, x);
          drawCounts(states, x);
          workers.textContent = count(x.workers);
          done.textContent = rate(perSecond(snap.point.lambdas[x.name]?.tick.succeeded, snap.point));
          toggle.update(x);
        },
      };
    },
  });
  replace(
    root,
    h(
      'div',
      { class: 'page-head' },
      h('h1', { text: 'Lambdas' }),
      h('span', { class: 'sub', text: 'Pausing holds due tasks; running attempts finish. Drop cancels them as they come due.' }),
    ),
    panel('All lambdas', table.el, { flush: true }),
  );
  return live.subscribe((s) => {
    snap = s;
    table.set(s.lambdas);
  });
}

/** Non-zero counts by state as chips linking to the task search. */
export function drawCounts(el, l) {
  const chips = STATES.filter((s) => (l.counts[s] ?? 0) > 0).map((s) =>
    h(
      'a',
      { class: 'chip', href: `#/tasks${query({ lambda: l.name, state: s })}`, title: `${s} tasks of ${l.name}`, dataset: { state: s } },
      h('span', { class: `swatch st-${s}` }),
      count(l.counts[s]),
    ),
  );
  replace(el, chips.length ? h('div', { class: 'chips' }, chips) : h('span', { class: 'muted', text: 'no tasks' }));
}
