// DOM helpers. Every string from the server (payloads, errors, names, keys) becomes a text
// node or textContent; nothing here parses HTML, so data can never become markup.

/**
 * Builds an element: `h('a', { href: '#/', class: 'x', onclick }, 'text', child)`. Props
 * starting with "on" are listeners; `text` sets textContent; other props are attributes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, numbers, nested arrays; null and false skipped). */
export function append(el, children) {
  for (const c of children.flat(Number.POSITIVE_INFINITY)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A panel with a title, an optional hint and right-hand content. */
export function panel(title, body, opts = {}) {
  return h(
    'section',
    { class: `panel ${opts.class ?? ''}`, 'aria-label': title },
    h(
      'div',
      { class: 'panel-head' },
      h('h2', { text: title }),
      opts.hint ? h('span', { class: 'hint', text: opts.hint }) : null,
      opts.right ? h('div', { class: 'right' }, opts.right) : null,
    ),
    h('div', { class: `panel-body ${opts.flush ? 'flush' : ''}` }, body),
  );
}

/** An empty state: a bold line and an explanation. */
export function empty(title, text) {
  return h('div', { class: 'empty' }, h('strong', { text: title }), text ? h('span', { text }) : null);
}

/** A task state (or attempt outcome) badge. */
export function stateBadge(state) {
  const cls = /^[A-Z_]+$/.test(state) ? `st-${state}` : `oc-${state}`;
  return h('span', { class: `badge ${cls}`, text: state.replaceAll('_', ' ').toLowerCase() });
}

/** A short-lived message in the corner. */
export function toast(text, bad = false) {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${bad ? 'bad' : ''}`, text });
  box.append(el);
  setTimeout(() => el.remove(), bad ? 6000 : 3000);
}

/** A `#/...` link; every path segment is URI-encoded. */
export function link(text, ...segments) {
  return h('a', { href: href(...segments), text });
}

export function href(...segments) {
  return `#/${segments.map((s) => encodeURIComponent(String(s))).join('/')}`;
}
