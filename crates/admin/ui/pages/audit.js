// Audit: the tamper-evident chain with its verification result; a broken
// chain names and highlights the first bad entry.
import { api, el, table } from '../lib.js';

export async function render(root) {
  const [{ entries }, verify] = await Promise.all([api('/api/v1/audit'), api('/api/v1/audit/verify')]);
  root.append(el('h1', {}, 'Audit'));
  const m = verify.problem && String(verify.problem).match(/audit entry (\d+)/);
  const bad = m ? Number(m[1]) : null;
  root.append(verify.intact
    ? el('p', { class: 'panel ok', id: 'audit-verdict', 'data-intact': 'true' },
      `Chain verified: ${verify.entries} entries, ${verify.versions} versions${verify.signed ? ', head signed' : ''}. Head: entry ${verify.head?.seq}, ${String(verify.head?.hash || '').slice(0, 16)}…`)
    : el('div', { class: 'panel error', id: 'audit-verdict', role: 'alert', 'data-intact': 'false', 'data-first-bad': bad ?? '' },
      el('strong', {}, 'Chain BROKEN. '), bad ? `First bad entry: ${bad}. ` : '', String(verify.problem || ''),
      verify.problems.length > 1 ? el('ul', {}, verify.problems.slice(1).map((p) => el('li', {}, p))) : null));
  root.append(table(['#', 'time', 'actor', 'action', 'version', 'detail', 'hash'],
    entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.version ?? '—', el('code', {}, e.detail), el('code', {}, String(e.hash).slice(0, 12))]),
    { rowClass: (i) => (entries[i].seq === bad ? 'bad' : null) }));
  const row = root.querySelector('tr.bad');
  if (row) row.setAttribute('aria-label', `entry ${bad}: first entry that fails verification`);
}
