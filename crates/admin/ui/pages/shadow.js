// Shadow: evaluate a candidate beside the active configuration on live
// traffic, watch what it would newly refuse or allow, then promote or stop.
import { api, el, table, canEdit, every, errorBox } from '../lib.js';

export async function render(root) {
  root.append(el('h1', {}, 'Shadow'));
  const report = el('div', { id: 'shadow-report', 'aria-live': 'polite' });
  const out = el('div', { id: 'shadow-outcome', 'aria-live': 'polite' });
  const refresh = async () => {
    let r = null;
    try {
      // Asked first, so that no candidate is not a failed request.
      const s = await api('/ui/session');
      if (s.shadowing) r = await api('/api/v1/shadow');
    } catch (e) { if (e.status !== 404) { report.replaceChildren(errorBox(e)); return; } }
    if (!r) { report.replaceChildren(el('p', { class: 'muted', 'data-shadowing': 'false' }, 'No candidate is being shadowed.')); return; }
    const rows = (kind) => {
      const found = r.findings.filter((f) => f.change === kind).map((f) => [f.origin, f.policy, String(f.count), el('code', {}, f.sample)]);
      return found.length ? found : [['none so far', '—', '0', '—']];
    };
    report.replaceChildren(el('p', { 'data-shadowing': 'true' }, `Shadowing "${r.comment}": ${r.compared} CORS request(s) compared${r.dropped ? `, ${r.dropped} findings dropped` : ''}.`),
      el('h2', {}, 'Newly refused'), el('div', { id: 'newly-refused' }, table(['origin', 'candidate policy', 'requests', 'sample'], rows('newly_refused'))),
      el('h2', {}, 'Newly allowed'), el('div', { id: 'newly-allowed' }, table(['origin', 'candidate policy', 'requests', 'sample'], rows('newly_allowed'))));
    if (canEdit()) {
      report.append(el('div', { class: 'row' },
        el('button', { type: 'button', id: 'shadow-promote', onclick: promote }, 'Promote to active'),
        el('button', { type: 'button', class: 'danger', id: 'shadow-stop', onclick: stop }, 'Stop shadowing')));
    }
  };
  const promote = async () => {
    if (!window.confirm('Apply the candidate as the new active version?')) return;
    try {
      const active = await api('/api/v1/versions/active');
      const v = await api('/api/v1/shadow/promote', { method: 'POST', body: { base: active.id, comment: 'promoted from shadow in the console' } });
      out.replaceChildren(el('p', { class: 'ok', role: 'status' }, `Promoted as version ${v.id}.`));
    } catch (e) { out.replaceChildren(errorBox(e)); }
    refresh();
  };
  const stop = async () => {
    try { await api('/api/v1/shadow', { method: 'DELETE' }); out.replaceChildren(el('p', { role: 'status' }, 'Stopped.')); } catch (e) { out.replaceChildren(errorBox(e)); }
    refresh();
  };
  root.append(report, out);
  await refresh();
  every(2000, refresh);
  if (!canEdit()) return;
  const active = await api('/api/v1/versions/active');
  const area = el('textarea', { id: 'shadow-candidate', rows: 14, cols: 80, spellcheck: 'false' });
  area.value = active.content;
  const comment = el('input', { id: 'shadow-comment', type: 'text', size: 40 });
  const start = el('button', { type: 'button', id: 'shadow-start' }, 'Start shadowing');
  start.addEventListener('click', async () => {
    try {
      await api('/api/v1/shadow', { method: 'POST', body: { content: area.value, comment: comment.value } });
      out.replaceChildren(el('p', { class: 'ok', role: 'status' }, 'Shadowing started.'));
    } catch (e) { out.replaceChildren(errorBox(e)); }
    refresh();
  });
  root.append(el('h2', {}, 'Start a candidate'), el('label', { for: 'shadow-candidate' }, 'Candidate configuration (YAML)'), area,
    el('label', { for: 'shadow-comment' }, 'Comment'), comment, el('div', {}, start));
}
