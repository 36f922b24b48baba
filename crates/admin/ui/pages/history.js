// History: every version with author, time and comment; the semantic diff
// between any two; rollback for editors.
import { api, el, table, canEdit, errorBox } from '../lib.js';

export function diffView(d) {
  if (!d) return el('p', { class: 'muted' }, 'No diff.');
  const items = [];
  const walk = (prefix, v) => {
    if (Array.isArray(v)) { if (v.length) items.push([prefix, v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ')]); }
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else if (v !== null && v !== undefined && v !== false && v !== '') items.push([prefix, String(v)]);
  };
  walk('', d);
  if (!items.length) return el('p', { class: 'muted', 'data-diff': 'empty' }, 'No semantic change.');
  return el('div', { class: 'diff', 'data-diff': 'changes' }, table(['what', 'change'], items.map(([k, v]) => [el('code', {}, k), v])));
}

export function propagationView(p) {
  if (!p || !p.length) return el('p', { class: 'muted' }, 'Nothing is tightened.');
  return el('div', { class: 'panel warn', id: 'tightening', role: 'note' },
    el('strong', {}, 'Tightening: '), 'browsers that cached an earlier preflight answer keep it until it expires.',
    el('ul', {}, p.map((t) => el('li', {}, `${t.policy}: ${t.change} — up to ${t.browserCacheSecs} s`))));
}

export async function render(root) {
  const { versions } = await api('/api/v1/versions');
  const active = await api('/api/v1/versions/active');
  root.append(el('h1', {}, 'History'));
  const out = el('div', { id: 'history-outcome', 'aria-live': 'polite' });
  root.append(table(['version', 'author', 'time', 'comment', canEdit() ? 'rollback' : null].filter(Boolean),
    versions.map((v) => [String(v.id) + (v.id === active.id ? ' (active)' : ''), v.author, v.createdAt, v.comment,
      canEdit() ? (v.id === active.id ? '—' : el('button', { type: 'button', class: 'secondary', 'data-rollback': v.id, onclick: () => rollback(v.id, active.id, out) }, `Roll back to ${v.id}`)) : null].filter((c) => c !== null))));
  root.append(out);
  const ids = versions.map((v) => v.id);
  const sel = (id, value) => el('select', { id }, ids.map((i) => el('option', { value: i, selected: i === value }, String(i))));
  const from = sel('diff-from', ids.length > 1 ? ids[ids.length - 2] : ids[0]);
  const to = sel('diff-to', ids[ids.length - 1]);
  const result = el('div', { id: 'diff-result' });
  const show = async () => {
    try {
      const d = await api(`/api/v1/diff?from=${from.value}&to=${to.value}`);
      result.replaceChildren(diffView(d.diff), propagationView(d.propagation));
    } catch (e) { result.replaceChildren(errorBox(e)); }
  };
  root.append(el('h2', {}, 'Diff between two versions'),
    el('div', { class: 'row' }, el('div', {}, el('label', { for: 'diff-from' }, 'From'), from), el('div', {}, el('label', { for: 'diff-to' }, 'To'), to),
      el('button', { type: 'button', id: 'diff-show', onclick: show }, 'Show diff')), result);
  await show();
}

// Ask for the rollback's comment in a form beside the table (labelled and
// usable by keyboard, unlike a prompt dialog), then roll back.
function rollback(to, base, out) {
  const comment = el('input', { id: 'rollback-comment', type: 'text', required: true, autocomplete: 'off' });
  const form = el('form', { id: 'rollback-form', class: 'row' },
    el('div', {}, el('label', { for: 'rollback-comment' }, `Why roll back to version ${to}? (required)`), comment),
    el('button', { type: 'submit', id: 'rollback-confirm' }, `Roll back to ${to}`),
    el('button', { type: 'button', class: 'secondary', id: 'rollback-cancel', onclick: () => out.replaceChildren() }, 'Cancel'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); confirmRollback(to, base, comment.value, out); });
  out.replaceChildren(form);
  comment.focus();
}

async function confirmRollback(to, base, comment, out) {
  if (!comment || !comment.trim()) { out.append(el('p', { class: 'error', role: 'alert' }, 'Rollback needs a comment; nothing was changed.')); return; }
  try {
    const r = await api('/api/v1/rollback', { method: 'POST', body: { base, to, comment } });
    out.replaceChildren(el('p', { class: 'ok', role: 'status' }, `Rolled back: version ${r.id} equals version ${to}.`));
    setTimeout(() => window.dispatchEvent(new HashChangeEvent('hashchange')), 600);
  } catch (e) {
    out.replaceChildren(e.status === 409 ? el('p', { class: 'warn', role: 'alert' }, `Not rolled back: version ${e.body.active} was applied meanwhile. Reload the page and try again.`) : errorBox(e));
  }
}
