// Edit and apply: the active configuration in an editor with line
// numbers; validation shows every error and lint at its line before
// anything is applied; the semantic diff and tightening warnings are
// reviewed before confirming; a comment is required; a 409 keeps the edit.
import { api, el, canEdit, errorBox } from '../lib.js';
import { diffView, propagationView } from './history.js';

let draft = null; // survives page changes: an edit is not lost by browsing

export async function render(root) {
  const active = await api('/api/v1/versions/active');
  if (!draft || draft.base === undefined) draft = { base: active.id, content: active.content };
  root.append(el('h1', {}, 'Edit and apply'));
  if (!canEdit()) {
    root.append(el('p', { class: 'muted' }, 'Your role is viewer: you can validate a draft here, but not apply it.'));
  }
  const gutter = el('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const area = el('textarea', { id: 'config-editor', spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'edit-base' });
  area.value = draft.content;
  const errorsAt = new Set();
  const paint = () => {
    const n = area.value.split('\n').length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) =>
      el('span', { class: errorsAt.has(i + 1) ? 'err' : null, 'data-line': i + 1 }, String(i + 1))));
    area.rows = n + 1;
  };
  area.addEventListener('input', () => { draft.content = area.value; errorsAt.clear(); paint(); review.replaceChildren(); });
  paint();
  const baseNote = el('p', { id: 'edit-base', class: 'muted' }, `Based on version ${draft.base} (active: ${active.id}).`);
  const review = el('div', { id: 'review', 'aria-live': 'polite' });
  const validateBtn = el('button', { type: 'button', id: 'validate' }, 'Validate');
  const resetBtn = el('button', { type: 'button', class: 'secondary', id: 'reset' }, 'Discard edit');
  root.append(baseNote, el('label', { for: 'config-editor' }, 'Configuration (YAML)'),
    el('div', { class: 'editor' }, gutter, area), el('div', { class: 'row' }, validateBtn, resetBtn), review);

  resetBtn.addEventListener('click', () => { draft = null; root.replaceChildren(); render(root); });
  validateBtn.addEventListener('click', async () => {
    review.replaceChildren(el('p', {}, 'Validating…'));
    let v;
    try { v = await api('/api/v1/validate', { method: 'POST', body: { content: area.value } }); }
    catch (e) { review.replaceChildren(errorBox(e)); return; }
    errorsAt.clear();
    v.errors.forEach((e) => e.line && errorsAt.add(e.line));
    paint();
    const list = el('ul', { id: 'validation-errors' }, v.errors.map((e) =>
      el('li', { class: 'error', 'data-line': e.line ?? '' }, e.line ? `line ${e.line}, column ${e.column}: ` : '', `${e.path}: ${e.reason}`, e.id ? ` [${e.id}]` : '')));
    const lints = el('ul', { id: 'validation-lints' }, v.lints.map((l) =>
      el('li', { class: l.severity === 'info' ? 'muted' : 'warn' }, l.line ? `line ${l.line}, column ${l.column}: ` : '', `${l.id} (${l.severity}) ${l.path}: ${l.message} — fix: ${l.fix}`)));
    review.replaceChildren(
      v.valid ? el('p', { class: 'ok', id: 'validation-result' }, `Valid. ${v.policyTests} policy test(s) pass.`)
        : el('p', { class: 'error', id: 'validation-result', role: 'alert' }, `Refused: ${v.errors.length} error(s). Nothing was applied.`),
      v.errors.length ? list : null, v.lints.length ? el('h2', {}, 'Lints') : null, v.lints.length ? lints : null);
    if (v.errors[0] && v.errors[0].line) focusLine(area, gutter, v.errors[0].line);
    if (!v.valid) return;
    review.append(el('h2', {}, `Changes against version ${v.base}`), diffView(v.diff), propagationView(v.propagation));
    if (!canEdit()) return;
    const comment = el('input', { id: 'apply-comment', type: 'text', required: true, size: 50 });
    const apply = el('button', { type: 'button', id: 'apply' }, 'Apply');
    const outcome = el('div', { id: 'apply-outcome', 'aria-live': 'polite' });
    review.append(el('div', { class: 'row' }, el('div', {}, el('label', { for: 'apply-comment' }, 'Comment (required)'), comment), apply), outcome);
    apply.addEventListener('click', async () => {
      if (!comment.value.trim()) { outcome.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'A comment is required.')); comment.focus(); return; }
      const warn = v.propagation.length ? `\n\nThis tightens ${v.propagation.length} thing(s); browsers may keep old preflight answers up to ${Math.max(...v.propagation.map((p) => p.browserCacheSecs))} s.` : '';
      if (!window.confirm(`Apply this change on top of version ${draft.base}?${warn}`)) return;
      try {
        const r = await api('/api/v1/versions', { method: 'POST', body: { base: draft.base, comment: comment.value, content: area.value } });
        draft = null;
        outcome.replaceChildren(el('p', { class: 'ok', role: 'status' }, `Applied as version ${r.id}.`));
        baseNote.textContent = `Based on version ${r.id} (active: ${r.id}).`;
      } catch (e) {
        if (e.status === 409) {
          outcome.replaceChildren(el('div', { class: 'panel warn', role: 'alert' },
            el('p', {}, `Not applied: version ${e.body.active} was applied by someone else after version ${e.body.base}, which this edit is based on. Your edit is kept.`),
            el('p', {}, 'Look at History for what changed, then rebase: validate again against the new active version.'),
            el('button', { type: 'button', id: 'rebase', onclick: () => { draft.base = e.body.active; baseNote.textContent = `Based on version ${draft.base} (active: ${draft.base}).`; validateBtn.click(); } }, `Rebase on version ${e.body.active}`)));
        } else outcome.replaceChildren(errorBox(e));
      }
    });
  });
}

// Select the line in the editor and scroll the editor (not the textarea,
// which is as tall as its text) so it is in view beside its number.
function focusLine(area, gutter, line) {
  const lines = area.value.split('\n');
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.setSelectionRange(start, start + (lines[line - 1] || '').length);
  area.scrollTop = 0;
  gutter.querySelector(`[data-line="${line}"]`)?.scrollIntoView({ block: 'center' });
}
