// Overview: vServices, listeners, rules, and each route's effective policy
// with the binding that chose it (rule, path, host, vService, global).
import { api, el, table } from '../lib.js';

export async function render(root) {
  const [eff, ready] = await Promise.all([
    api('/api/v1/effective'),
    fetch('/ready', { cache: 'no-store' }).then((r) => r.json()).catch(() => null),
  ]);
  root.append(el('h1', {}, 'Overview'),
    el('p', {}, `Active version ${eff.version}. Global policy: `, el('code', {}, eff.globalCors || 'none'), '. ',
      ready && ready.ready ? el('span', { class: 'ok' }, 'Store verified, ready.') : el('span', { class: 'error' }, `Not ready: ${ready && ready.problem}`)));
  root.append(el('h2', {}, 'vServices and listeners'), table(
    ['vService', 'listens on', 'hostnames', 'vService policy', 'hostCors', 'pathCors'],
    eff.vservices.map((v) => [v.name, el('code', {}, `${v.tls ? 'https' : 'http'}://${v.listen}`),
      v.hostnames.length ? v.hostnames.join(', ') : 'any',
      v.cors || 'none',
      Object.entries(v.hostCors || {}).map(([h, p]) => `${h} → ${p}`).join(', ') || '—',
      v.pathCors.map((p) => `${p.prefix} → ${p.cors}`).join(', ') || '—'])));
  for (const v of eff.vservices) {
    root.append(el('h2', {}, `Routes of ${v.name}`), table(
      ['#', 'rule', 'match', 'action', 'effective policy', 'binding', 'why'],
      v.rules.map((r) => [String(r.index), r.name,
        describe(r.match), r.action,
        el('strong', {}, r.policy || 'none'),
        el('span', { class: 'badge', 'data-binding': r.binding }, r.binding + (r.bindingPrefix ? ` ${r.bindingPrefix}` : '')),
        el('span', {}, r.why, r.matchedRule && r.matchedRule !== r.name
          ? el('span', { class: 'warn' }, ` (a request like ${r.sample.method} ${r.sample.path} is taken by rule ${r.matchedRule} first)`) : null)]),
      { caption: 'The policy is chosen by the route compiler for a request the rule matches.' }));
  }
}

function describe(m) {
  const parts = [];
  if (m.path) parts.push(m.path.exact ? `path = ${m.path.exact}` : m.path.prefix ? `path ${m.path.prefix}*` : `path ~ ${m.path.regex}`);
  if (m.hosts.length) parts.push(`host ${m.hosts.join('|')}`);
  if (m.methods.length) parts.push(m.methods.join('|'));
  if (m.headers) parts.push(`${m.headers} header condition(s)`);
  if (m.query) parts.push(`${m.query} query condition(s)`);
  return parts.join(', ') || 'every request';
}
