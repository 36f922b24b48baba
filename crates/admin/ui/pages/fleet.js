// Fleet: this node's applied version, sync state and readiness, from its
// own state. The view of every instance of a fleet comes with the fleet's
// `GET /fleet` (docs/fleet.md); until then there is one instance.
import { api, el, table } from '../lib.js';

export async function render(root) {
  root.append(el('h1', {}, 'Fleet'));
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
