// The dashboard's entry: the token prompt, then one page per address (#/ and #/instance/<id>).

import { onTokenNeeded, session, storeToken, storedToken } from './api.js';
import { fill, h } from './ui.js';
import { showList } from './list.js';
import { showInstance } from './instance.js';

const main = document.getElementById('main');
let info = null;
/** What the page on screen stops (its timers) when another replaces it. */
let leave = () => {};

/** Shows the token dialog; resolves once the user gave a token (kept for this tab). */
function askForToken(message) {
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-error').textContent = message ?? '';
  input.value = '';
  return new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) {
        document.getElementById('token-error').textContent = 'Type the token first.';
        return;
      }
      storeToken(token);
      form.removeEventListener('submit', submit);
      dialog.removeEventListener('cancel', stay);
      dialog.removeEventListener('close', reopen);
      dialog.close();
      showForgetButton();
      resolve();
    };
    // Nothing works without the token: Escape does not close the prompt, and should the
    // browser close it anyway (a second Escape), it opens again.
    const stay = (event) => event.preventDefault();
    const reopen = () => {
      if (!storedToken()) dialog.showModal();
    };
    form.addEventListener('submit', submit);
    dialog.addEventListener('cancel', stay);
    dialog.addEventListener('close', reopen);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

function showForgetButton() {
  document.getElementById('forget-token').hidden = !storedToken();
}

function route() {
  leave();
  leave = () => {};
  const hash = location.hash.replace(/^#/, '') || '/';
  const instance = hash.match(/^\/instance\/(.+)$/);
  if (instance) {
    leave = showInstance(main, decodeURIComponent(instance[1]), info);
  } else {
    const query = new URLSearchParams(hash.split('?')[1] ?? '');
    leave = showList(main, query, info);
  }
}

async function start() {
  onTokenNeeded(askForToken);
  document.getElementById('forget-token').addEventListener('click', () => {
    storeToken(null);
    location.reload();
  });
  try {
    info = await session();
  } catch (error) {
    fill(main, h('p', { class: 'error', role: 'alert' }, `Cannot reach the server: ${error.message}`));
    return;
  }
  showForgetButton();
  document.getElementById('connection').textContent = `durable ${info.version}`;
  window.addEventListener('hashchange', route);
  route();
}

start();
