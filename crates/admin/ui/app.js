// The console's shell: sign-in, the hash router, and the page modules.
import { api, session, el, clearTimers, errorBox } from './lib.js';
import * as overview from './pages/overview.js';
import * as policies from './pages/policies.js';
import * as edit from './pages/edit.js';
import * as history from './pages/history.js';
import * as audit from './pages/audit.js';
import * as explain from './pages/explain.js';
import * as shadow from './pages/shadow.js';
import * as fleet from './pages/fleet.js';
import * as traffic from './pages/traffic.js';

const pages = { overview, policies, edit, history, audit, explain, shadow, fleet, traffic };
const $ = (id) => document.getElementById(id);

function signedIn(s) {
  Object.assign(session, { name: s.name, role: s.role, csrf: s.csrf });
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  $('who').textContent = `${s.name} (${s.role})`;
  document.body.dataset.role = s.role;
  show();
}

function signedOut(message) {
  Object.assign(session, { name: null, role: null, csrf: null });
  clearTimers();
  $('page').replaceChildren();
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('token').focus();
}

let generation = 0;
async function show() {
  if (!session.role) return;
  clearTimers();
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || 'overview';
  const page = pages[name] || overview;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = el('section', { 'data-page': name, 'aria-busy': 'true' });
  $('page').replaceChildren(root);
  const mine = ++generation;
  try {
    await page.render(root);
  } catch (e) {
    if (e.status === 401) return signedOut('Your session ended; sign in again.');
    root.append(errorBox(e));
  } finally {
    if (mine === generation) root.setAttribute('aria-busy', 'false');
  }
  document.title = `${root.querySelector('h1')?.textContent || name} · corsgate console`;
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('token');
  try {
    const s = await api('/ui/login', { method: 'POST', body: { token: input.value } });
    input.value = '';
    signedIn(s);
  } catch (e) {
    input.value = '';
    $('signin-error').textContent = e.status === 401 ? 'That token is not accepted.' : e.message;
  }
});

$('signout').addEventListener('click', async () => {
  try { await api('/ui/logout', { method: 'POST' }); } catch { /* signed out anyway */ }
  signedOut('Signed out.');
});

window.addEventListener('hashchange', show);

(async () => {
  try {
    const s = await api('/ui/session');
    if (s.signedIn) signedIn(s);
    else signedOut('');
  } catch {
    signedOut('');
  }
})();
