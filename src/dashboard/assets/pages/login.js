// Asks for the server's token. It is kept in sessionStorage (this tab only, gone when the tab
// closes) and sent as an Authorization header; never in a URL or a cookie.

import { api, token } from '../api.js';
import { h, replace } from '../dom.js';

export function mount(root, { onSignedIn, refused = false }) {
  const input = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'current-password',
    placeholder: 'Token',
    'aria-label': 'Token',
    required: true,
  });
  const error = h('div', {
    class: 'form-error',
    role: 'alert',
    text: refused ? 'The server refused the stored token; enter it again.' : '',
  });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Sign in' });
  const form = h(
    'form',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        button.disabled = true;
        error.textContent = '';
        token.set(value);
        try {
          await api('/v1/lambdas');
          onSignedIn();
        } catch (err) {
          token.clear();
          error.textContent = err.status === 401 ? 'That token was refused.' : `Could not reach the server: ${err.message}`;
          button.disabled = false;
          input.select();
        }
      },
    },
    input,
    button,
    error,
  );
  replace(
    root,
    h(
      'div',
      { class: 'panel login' },
      h('h1', { text: 'Sign in' }),
      h('p', { text: 'This Conveyor server needs its access token (CONVEYOR_TOKEN). It is kept for this tab only.' }),
      form,
    ),
  );
  input.focus();
  return () => {};
}
