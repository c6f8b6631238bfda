// Pause, drop and resume (whole lambda or one collection) through the existing POST routes.

import { api } from './api.js';
import { h, replace, toast } from './dom.js';
import { live } from './live.js';

const WHOLE = '*';

/** action: 'pause' | 'drop' | 'resume'. Answers the lambda summary, or null after showing the error. */
export async function setGate(lambda, action, collection) {
  const body = {};
  if (collection) body.collection = collection;
  if (action === 'drop') body.mode = 'drop';
  try {
    const res = await api(`/v1/lambdas/${encodeURIComponent(lambda)}/${action === 'resume' ? 'resume' : 'pause'}`, {
      method: 'POST',
      body,
    });
    live.patchLambda(res.lambda);
    const what = collection ? `${lambda} / ${collection}` : lambda;
    toast(`${what}: ${action === 'resume' ? 'resumed' : action === 'drop' ? 'dropping due tasks' : 'paused'}`);
    return res.lambda;
  } catch (err) {
    toast(`Could not ${action} ${lambda}: ${err.message}`, true);
    return null;
  }
}

/** Gates on single collections that are not open. */
export function collectionGates(l) {
  return (l.gates ?? []).filter((g) => g.collection !== WHOLE && g.mode !== 'open');
}

/** The whole-lambda pause/resume button; `update(l)` keeps its label in step. */
export function lambdaToggle(name) {
  let paused = false;
  const btn = h('button', {
    type: 'button',
    class: 'btn btn-sm',
    onclick: async () => {
      btn.disabled = true;
      await setGate(name, paused ? 'resume' : 'pause');
      btn.disabled = false;
    },
  });
  return {
    el: btn,
    update(l) {
      paused = l.paused;
      btn.textContent = paused ? 'Resume' : 'Pause';
      btn.dataset.action = paused ? 'resume' : 'pause';
      btn.className = `btn btn-sm ${paused ? 'btn-primary' : 'btn-warn'}`;
    },
  };
}

/** A small form to pause, drop or resume one collection of a lambda. */
export function collectionForm(name) {
  const input = h('input', { type: 'text', name: 'collection', placeholder: 'collection', maxlength: 128, 'aria-label': 'Collection' });
  const act = (action) => async (e) => {
    e.preventDefault();
    const c = input.value.trim();
    if (!c) {
      input.focus();
      return;
    }
    if (await setGate(name, action, c)) input.value = '';
  };
  return h(
    'details',
    { class: 'more' },
    h('summary', { text: 'Collection…' }),
    h(
      'form',
      { class: 'inline-form', onsubmit: act('pause') },
      input,
      h('button', { type: 'submit', class: 'btn btn-sm btn-warn', dataset: { action: 'pause-collection' }, text: 'Pause' }),
      h('button', {
        type: 'button',
        class: 'btn btn-sm btn-danger',
        dataset: { action: 'drop-collection' },
        text: 'Drop',
        onclick: act('drop'),
      }),
      h('button', {
        type: 'button',
        class: 'btn btn-sm',
        dataset: { action: 'resume-collection' },
        text: 'Resume',
        onclick: act('resume'),
      }),
    ),
  );
}

/** Status badges: the lambda's own, then one per gated collection with a resume button. */
export function drawStatus(el, l) {
  const gates = collectionGates(l);
  replace(
    el,
    h(
      'div',
      { class: 'chips' },
      l.paused
        ? h('span', { class: 'badge paused', text: gateWord(l.gates, WHOLE) })
        : h('span', { class: 'badge running', text: 'running' }),
      gates.map((g) =>
        h(
          'span',
          { class: `badge ${g.mode === 'drop' ? 'drop' : 'paused'}`, title: `collection ${g.collection}` },
          `${g.collection}: ${g.mode === 'drop' ? 'dropping' : 'paused'}`,
          h('button', {
            type: 'button',
            class: 'btn btn-sm btn-ghost',
            text: 'resume',
            onclick: () => setGate(l.name, 'resume', g.collection),
          }),
        ),
      ),
    ),
  );
}

function gateWord(gates, collection) {
  const g = (gates ?? []).find((x) => x.collection === collection);
  return g?.mode === 'drop' ? 'dropping' : 'paused';
}
