// Task search: by id (opens the task), or by lambda, state and key (GET /v1/tasks), newest first.

import { api, query } from '../api.js';
import { empty, h, href, panel, replace, stateBadge } from '../dom.js';
import { STATES, time } from '../format.js';
import { live } from '../live.js';

const PAGE = 50;

/** `params`: URLSearchParams of the hash (#/tasks?lambda=&state=&key=). */
export function mount(root, params) {
  const filters = { lambda: params.get('lambda') ?? '', state: params.get('state') ?? '', key: params.get('key') ?? '' };
  const idInput = h('input', { type: 'search', name: 'id', placeholder: 'task id', 'aria-label': 'Task id', class: 'mono' });
  const lambdaSelect = h('select', { name: 'lambda', 'aria-label': 'Lambda' }, h('option', { value: '', text: 'All lambdas' }));
  const names = new Set((live.snapshot?.lambdas ?? []).map((l) => l.name));
  if (filters.lambda) names.add(filters.lambda);
  for (const n of [...names].sort()) lambdaSelect.append(h('option', { value: n, text: n }));
  lambdaSelect.value = filters.lambda;
  const stateSelect = h(
    'select',
    { name: 'state', 'aria-label': 'State' },
    h('option', { value: '', text: 'Any state' }),
    STATES.map((s) => h('option', { value: s, text: s.replaceAll('_', ' ').toLowerCase() })),
  );
  stateSelect.value = filters.state;
  const keyInput = h('input', { type: 'search', name: 'key', placeholder: 'key', 'aria-label': 'Key', value: filters.key });

  const results = h('div', { class: 'table-wrap' }, empty('Searching…'));
  const more = h('div', { class: 'panel-body' });
  const search = h(
    'form',
    {
      class: 'form-row',
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/tasks${query({ lambda: lambdaSelect.value, state: stateSelect.value, key: keyInput.value.trim() })}`;
      },
    },
    h('label', { class: 'field' }, h('span', { text: 'Lambda' }), lambdaSelect),
    h('label', { class: 'field' }, h('span', { text: 'State' }), stateSelect),
    h('label', { class: 'field grow' }, h('span', { text: 'Key' }), keyInput),
    h('button', { type: 'submit', class: 'btn btn-primary', text: 'Search' }),
  );
  const byId = h(
    'form',
    {
      class: 'form-row',
      onsubmit: (e) => {
        e.preventDefault();
        const id = idInput.value.trim();
        if (id) location.hash = href('tasks', id);
      },
    },
    h('label', { class: 'field grow' }, h('span', { text: 'Task id' }), idInput),
    h('button', { type: 'submit', class: 'btn', text: 'Open' }),
  );

  replace(
    root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Tasks' }), h('span', { class: 'sub', text: 'Newest first' })),
    h('div', { class: 'grid grid-search' }, panel('Find by id', byId), panel('Search', search)),
    h('div', { class: 'section-gap' }, panel('Results', [results, more], { flush: true })),
  );

  let stopped = false;
  const rows = [];
  let loading = false;
  const load = async (cursor) => {
    // One page at a time: a second click on Load more before the answer came asked for the same
    // cursor again and listed that page's tasks twice.
    if (loading) return;
    loading = true;
    try {
      const res = await api(`/v1/tasks${query({ ...filters, limit: PAGE, cursor })}`);
      if (stopped) return;
      rows.push(...res.tasks);
      replace(results, rows.length ? taskTable(rows) : empty('No tasks match', 'Try another lambda, state or key.'));
      replace(
        more,
        res.nextCursor ? h('button', { type: 'button', class: 'btn', text: 'Load more', onclick: () => load(res.nextCursor) }) : null,
      );
    } catch (err) {
      if (!stopped) replace(results, empty('Search failed', err.message));
    } finally {
      loading = false;
    }
  };
  load();
  return () => {
    stopped = true;
  };
}

function taskTable(tasks) {
  return h(
    'table',
    { class: 'data' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Task', 'Lambda', 'State', 'Key', 'Tries', 'Created', 'Updated'].map((t) => h('th', { text: t })),
      ),
    ),
    h(
      'tbody',
      {},
      tasks.map((t) =>
        h(
          'tr',
          { dataset: { task: t.id } },
          h('td', {}, h('a', { class: 'mono', href: href('tasks', t.id), text: t.id })),
          h('td', {}, h('a', { href: href('lambdas', t.lambda), text: t.lambda })),
          h('td', {}, stateBadge(t.state)),
          h(
            'td',
            {},
            t.key === null ? h('span', { class: 'muted', text: '–' }) : h('span', { class: 'mono ellipsis', title: t.key, text: t.key }),
          ),
          h('td', { text: `${t.tries} of ${t.maxAttempts}` }),
          h('td', { class: 'muted', text: time(t.createdAt) }),
          h('td', { class: 'muted', text: time(t.updatedAt) }),
        ),
      ),
    ),
  );
}
