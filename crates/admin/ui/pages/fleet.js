// Fleet: every instance with its applied version, sync state and last
// error, from /fleet when this gateway belongs to a fleet; otherwise this
// node alone, from its own state.
import { api, el, table } from '../lib.js';

export async function render(root) {
  root.append(el('h1', {}, 'Fleet'));
  const r = await fetch('/fleet', { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
  let fleet = null;
  if (r.ok && (r.headers.get('content-type') || '').includes('json')) fleet = await r.json();
  const instances = fleet && (fleet.instances || fleet.members || (Array.isArray(fleet) ? fleet : null));
  if (instances) {
    root.append(el('p', { id: 'fleet-mode', 'data-mode': 'fleet' }, `${instances.length} instance(s).`),
      table(['instance', 'applied version', 'sync', 'last error'], instances.map((i) => [
        String(i.name ?? i.id ?? i.instance ?? '?'), String(i.appliedVersion ?? i.applied ?? i.version ?? '—'),
        String(i.sync ?? i.state ?? i.status ?? '—'), String(i.lastError ?? i.error ?? '—')])));
    return;
  }
  const [active, ready, metrics] = await Promise.all([
    api('/api/v1/versions/active'),
    fetch('/ready', { cache: 'no-store' }).then((x) => x.json()).catch(() => ({})),
    api('/metrics').catch(() => ''),
  ]);
  const served = (String(metrics).match(/^corsgate_config_version\s+(\d+)/m) || [])[1];
  root.append(el('p', { id: 'fleet-mode', 'data-mode': 'single' }, 'Single instance: this node. No fleet is configured, so this node is the whole deployment.'),
    table(['instance', 'stored active version', 'version in force', 'sync', 'last error'], [[
      `this node (${location.host})`, String(active.id), served ?? '—',
      served && Number(served) === active.id ? 'in sync' : 'differs',
      ready.ready ? '—' : String(ready.problem || 'not ready')]]));
}
