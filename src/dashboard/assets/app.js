// The dashboard's entry: token check, the live feed, and a hash router over the pages.

import { ApiError, api, openLive, token, whenUnauthorized } from './api.js';
import { empty, h, replace } from './dom.js';
import { live } from './live.js';
import * as lambdaPage from './pages/lambda.js';
import * as lambdasPage from './pages/lambdas.js';
import * as loginPage from './pages/login.js';
import * as overviewPage from './pages/overview.js';
import * as taskPage from './pages/task.js';
import * as tasksPage from './pages/tasks.js';

const main = document.getElementById('main');
const status = document.getElementById('live-status');
const signOut = document.getElementById('sign-out');

let unmount = () => {};
let stopLive = null;
let signedIn = false;

function setStatus(state) {
  status.dataset.state = state;
  status.querySelector('.label').textContent = state === 'live' ? 'live' : state === 'offline' ? 'reconnecting' : 'connecting';
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  try {
    return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs ?? '') };
  } catch {
    return { parts: ['?'], params: new URLSearchParams() };
  }
}

function route() {
  if (!signedIn) return;
  unmount();
  const { parts, params } = parseHash();
  const [section, arg] = parts;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === (section ?? 'overview'));
  if (parts.length > 2) unmount = notFound();
  else if (!section) unmount = overviewPage.mount(main);
  else if (section === 'lambdas' && arg === undefined) unmount = lambdasPage.mount(main);
  else if (section === 'lambdas') unmount = lambdaPage.mount(main, arg);
  else if (section === 'tasks' && arg === undefined) unmount = tasksPage.mount(main, params);
  else if (section === 'tasks') unmount = taskPage.mount(main, arg);
  else unmount = notFound();
  window.scrollTo(0, 0);
}

function notFound() {
  replace(main, h('div', { class: 'panel' }, empty('No such page', 'Pick a section above.')));
  return () => {};
}

function start() {
  signedIn = true;
  signOut.hidden = !token.get();
  stopLive?.();
  stopLive = openLive({ onSnapshot: (s) => live.ingest(s), onStatus: setStatus });
  route();
}

function showLogin(refused) {
  signedIn = false;
  if (refused) token.clear();
  stopLive?.();
  stopLive = null;
  setStatus('connecting');
  unmount();
  signOut.hidden = true;
  unmount = loginPage.mount(main, { onSignedIn: start, refused });
}

whenUnauthorized(() => {
  if (signedIn) showLogin(Boolean(token.get()));
});
signOut.addEventListener('click', () => {
  token.clear();
  showLogin(false);
});
window.addEventListener('hashchange', route);

(async () => {
  try {
    await api('/v1/lambdas');
    start();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin(Boolean(token.get()));
    else replace(main, h('div', { class: 'panel' }, empty('Cannot reach the server', err.message)));
  }
})();
