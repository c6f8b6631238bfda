// One task: its fields, payload, result, error and every attempt; cancel and retry.

import { api } from '../api.js';
import { empty, h, href, panel, replace, stateBadge, toast } from '../dom.js';
import { between, json, ms, TERMINAL, time } from '../format.js';

const REFRESH_MS = 1000;
const CANCELLABLE = new Set(['NEW', 'ENQUEUED', 'RETRIABLE_FAILURE']);
const RETRIABLE = new Set(['FATAL_FAILURE', 'CANCELLED']);

export function mount(root, id) {
  const head = h('div', { class: 'page-head' }, h('h1', { class: 'mono', text: id }));
  const body = h('div', {}, h('div', { class: 'panel' }, empty('Loading…')));
  replace(root, h('div', { class: 'crumbs' }, h('a', { href: '#/tasks', text: 'Tasks' }), ' / '), head, body);

  let stopped = false;
  let timer = null;
  let shown = '';
  const load = async () => {
    timer = null;
    try {
      const { task } = await api(`/v1/tasks/${encodeURIComponent(id)}`);
      if (stopped) return;
      const text = JSON.stringify(task);
      if (text !== shown) {
        shown = text;
        draw(task);
      }
      // Open tasks change by themselves: follow them until they end.
      if (!TERMINAL.has(task.state)) timer = setTimeout(load, REFRESH_MS);
    } catch (err) {
      if (stopped) return;
      replace(
        body,
        h(
          'div',
          { class: 'panel' },
          err.status === 404
            ? empty(`No task ${id}`, 'It may never have existed, or retention deleted it.')
            : empty('Could not load the task', err.message),
        ),
      );
    }
  };
  const act = (action) => async () => {
    try {
      await api(`/v1/tasks/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
      toast(action === 'cancel' ? 'Task cancelled' : 'Task re-driven with a fresh attempt budget');
    } catch (err) {
      toast(`Could not ${action}: ${err.message}`, true);
    }
    if (timer) clearTimeout(timer);
    load();
  };

  const draw = (t) => {
    replace(
      head,
      h('h1', { class: 'mono', text: t.id }),
      stateBadge(t.state),
      h(
        'div',
        { class: 'actions' },
        CANCELLABLE.has(t.state)
          ? h('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'cancel' }, text: 'Cancel', onclick: act('cancel') })
          : null,
        RETRIABLE.has(t.state)
          ? h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'retry' }, text: 'Retry', onclick: act('retry') })
          : null,
      ),
    );
    const fields = [
      ['Lambda', h('a', { href: href('lambdas', t.lambda), text: t.lambda })],
      ['Collection', t.collection ?? '–'],
      ['Key', t.key === null ? '–' : h('span', { class: 'mono', text: t.key })],
      ['Ordered', t.ordered ? 'yes' : 'no'],
      ['Priority', String(t.priority)],
      ['Run at', time(t.runAt)],
      ['Tries', `${t.tries} of ${t.maxAttempts}`],
      ['Timeout', ms(t.timeoutMs)],
      ['Worker', t.workerId ?? '–'],
      ['Waiting for', t.waitingFor ?? '–'],
      ['Reason', t.reason ?? '–'],
      ['Created', time(t.createdAt)],
      ['Updated', time(t.updatedAt)],
    ];
    const attempts = (t.attempts ?? []).slice().sort((a, b) => b.attempt - a.attempt);
    replace(
      body,
      panel(`Attempts (${attempts.length})`, attemptTable(attempts), { flush: true, hint: 'newest first' }),
      h(
        'div',
        { class: 'grid grid-2 section-gap' },
        panel(
          'Task',
          h(
            'dl',
            { class: 'kv' },
            fields.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]),
          ),
        ),
        h(
          'div',
          { class: 'stack' },
          panel('Payload', h('pre', { class: 'code', dataset: { field: 'payload' }, text: json(t.payload) })),
          t.result !== null ? panel('Result', h('pre', { class: 'code', dataset: { field: 'result' }, text: json(t.result) })) : null,
          t.error
            ? panel('Error', errorBlock(t.error), { hint: t.state === 'SUCCESS' ? 'of an earlier attempt' : 'of the last attempt' })
            : null,
        ),
      ),
    );
  };

  load();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

function errorBlock(e) {
  const title = [e.name === 'Error' ? null : e.name, e.code].filter(Boolean).join(' · ');
  return h(
    'div',
    {},
    title ? h('div', { class: 'muted', text: title }) : null,
    h('pre', { class: 'code error', dataset: { field: 'error' }, text: e.stack || e.message }),
  );
}

function attemptTable(attempts) {
  if (attempts.length === 0) return empty('No attempts yet', 'An attempt starts when a worker claims the task.');
  return h(
    'table',
    { class: 'data', dataset: { table: 'attempts' } },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['#Attempt', 'Outcome', 'Worker', 'Started', 'Finished', '#Took', 'Error'].map((c) =>
          h('th', { class: c.startsWith('#') ? 'num' : null, text: c.replace('#', '') }),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      attempts.map((a) =>
        h(
          'tr',
          { dataset: { attempt: String(a.attempt), outcome: a.outcome } },
          h('td', { class: 'num', text: String(a.attempt) }),
          h('td', {}, stateBadge(a.outcome)),
          h('td', {}, h('span', { class: 'mono ellipsis', title: a.workerId ?? '', text: a.workerId ?? '–' })),
          h('td', { class: 'muted', text: time(a.startedAt) }),
          h('td', { class: 'muted', text: time(a.finishedAt) }),
          h('td', { class: 'num', text: ms(between(a.startedAt, a.finishedAt)) }),
          h(
            'td',
            { class: 'error' },
            a.error
              ? h(
                  'details',
                  { class: 'more' },
                  h('summary', { text: a.error.message }),
                  a.error.stack ? h('pre', { class: 'code error', text: a.error.stack }) : null,
                )
              : h('span', { class: 'muted', text: '–' }),
          ),
        ),
      ),
    ),
  );
}
