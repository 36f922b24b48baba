// Policies: each policy's fields, the active version's lints with their
// fixes, and its policy tests.
import { api, el, table } from '../lib.js';

const show = (v) => (Array.isArray(v) ? v.join(', ') || '[]' : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

export async function render(root) {
  const [eff, active] = await Promise.all([api('/api/v1/effective'), api('/api/v1/versions/active')]);
  root.append(el('h1', {}, 'Policies'), el('p', {}, `Active version ${active.id}, by ${active.author}.`));
  const lints = Array.isArray(active.lints) ? active.lints : [];
  for (const [name, spec] of Object.entries(eff.policies)) {
    const mine = lints.filter((l) => (l.path || '').startsWith(`policies.${name}.`) || l.path === `policies.${name}`);
    root.append(el('h2', {}, name), table(['field', 'value'],
      Object.entries(spec).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length && false)).map(([k, v]) => [el('code', {}, k), show(v)])),
    mine.length ? lintTable(mine) : el('p', { class: 'ok' }, 'No lints.'));
  }
  const other = lints.filter((l) => !(l.path || '').startsWith('policies.'));
  if (other.length) root.append(el('h2', {}, 'Other lints'), lintTable(other));
  // Each policy's tests (tests.allow / tests.deny) and their results, run
  // by the same code as `corsgate check`.
  const cases = Object.entries(eff.policyTests || {}).flatMap(([policy, list]) => list.map((t) => ({ policy, ...t })));
  const failed = cases.filter((t) => !t.passed).length;
  root.append(el('h2', {}, 'Policy tests'),
    el('p', { id: 'policy-tests-summary', class: failed ? 'error' : 'ok' }, `${cases.length} policy test(s), ${failed} failed.`),
    cases.length ? el('div', { id: 'policy-tests' }, table(['policy', 'test', 'origin', 'must be', 'result'],
      cases.map((t) => [t.policy, el('code', {}, t.at), el('code', {}, t.origin), t.expect, t.passed ? 'passed' : `failed: ${t.reason}`]))) : null,
    el('p', { class: 'muted' }, 'A configuration whose tests fail is refused, so the active version always passes its own tests.'));
}

function lintTable(lints) {
  return table(['lint', 'severity', 'where', 'what', 'fix'],
    lints.map((l) => [el('code', {}, l.id), l.severity, `${l.path}${l.line ? ` (line ${l.line}:${l.column})` : ''}`, l.message, l.fix]));
}
