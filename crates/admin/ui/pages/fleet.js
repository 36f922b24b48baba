// Fleet: every instance sharing this store, from `GET /fleet` — the version
// each serves and whether that is the active one (in sync, behind by N,
// failing with its reason). On the embedded SQLite store the fleet is this
// one instance, in the same table. Refreshes every 5 s.
import { api, el, table, every, ApiError } from '../lib.js';

const STATE = {
  'in-sync': 'in sync',
  behind: 'behind',
  failing: 'failing',
  diverged: 'diverged',
  'no-active-version': 'no active version',
};

function stateText(n) {
  if (n.state === 'behind') return `behind by ${n.behindBy}`;
  return STATE[n.state] || String(n.state);
}

function rows(data) {
  return (data.nodes || []).map((n) => [
    n.node === data.self && data.store === 'etcd' ? `${n.node} (this instance)` : n.node,
    String(n.address ?? '—'),
    n.applied == null ? '—' : String(n.applied),
    el('span', { class: n.state === 'in-sync' ? 'ok' : 'error', 'data-state': n.state }, stateText(n)),
    String(n.since ?? '—'),
    n.failed ? `version ${n.failed.version}: ${n.failed.error}` : '—',
  ]);
}

async function draw(box) {
  let data;
  let problem = null;
  try {
    data = await api('/fleet');
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 503 || !e.body) throw e;
    problem = e.body;
  }
  box.replaceChildren();
  if (problem) {
    const me = problem.selfRecord || {};
    box.append(
      el('p', { id: 'fleet-mode', 'data-mode': 'unreachable', role: 'status', class: 'panel error' },
        `The shared store cannot be read: ${problem.error}. This instance keeps serving version ${me.applied ?? '—'}`
        + (problem.secondsSinceStoreReached == null ? '.' : `; the store last answered ${problem.secondsSinceStoreReached} s ago.`)));
    return;
  }
  const single = data.store !== 'etcd';
  const active = data.active ? `version ${data.active.version}` : 'none';
  const nodes = data.nodes || [];
  const synced = nodes.filter((n) => n.state === 'in-sync').length;
  box.append(
    el('p', { id: 'fleet-mode', 'data-mode': single ? 'single' : 'fleet', role: 'status' },
      single
        ? `Single instance on the embedded store: this instance is the whole deployment. Active: ${active}.`
        : `${nodes.length} instance${nodes.length === 1 ? '' : 's'} on the etcd store, ${synced} in sync with the active ${active}.`),
    table(['instance', 'admin address', 'serves version', 'state', 'since', 'last error'], rows(data),
      { caption: 'Instances sharing this store (an instance leaves the list when its lease expires)' }));
}

export async function render(root) {
  root.append(el('h1', {}, 'Fleet'));
  const box = el('div', { id: 'fleet' });
  root.append(box);
  await draw(box);
  every(5000, () => draw(box).catch(() => {}));
}
