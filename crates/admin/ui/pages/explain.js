// Explain: why a browser would block (or allow) a call, leg by leg, from
// the same engine as `corsgate explain`.
import { api, el, field, errorBox } from '../lib.js';

let last = { origin: 'https://app.example.com', method: 'GET', url: '', headers: '', credentials: false };

export async function render(root) {
  root.append(el('h1', {}, 'Explain'), el('p', { class: 'muted' }, 'What the browser sends for a fetch() from a page, what corsgate answers to each request, and whether the script can read the response.'));
  const origin = el('input', { id: 'ex-origin', type: 'text', size: 40, value: last.origin });
  const method = el('input', { id: 'ex-method', type: 'text', size: 8, value: last.method });
  const url = el('input', { id: 'ex-url', type: 'text', size: 50, value: last.url, placeholder: 'http://api.example.com:8080/path' });
  const headers = el('textarea', { id: 'ex-headers', rows: 3, cols: 50, placeholder: 'Content-Type: application/json' });
  headers.value = last.headers;
  const creds = el('input', { id: 'ex-credentials', type: 'checkbox', checked: last.credentials });
  const out = el('div', { id: 'ex-result', 'aria-live': 'polite' });
  const form = el('form', { id: 'explain-form' },
    el('div', { class: 'row' }, field('Page origin', origin), field('Method', method), field('URL', url)),
    field('Request headers set by the script (one "Name: value" a line)', headers),
    el('div', {}, creds, el('label', { class: 'inline', for: 'ex-credentials' }, "credentials: 'include'")),
    el('button', { type: 'submit', id: 'ex-run' }, 'Explain'));
  root.append(form, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    last = { origin: origin.value, method: method.value, url: url.value, headers: headers.value, credentials: creds.checked };
    const hs = headers.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.indexOf(':');
      return i < 0 ? [l, ''] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
    try {
      const r = await api('/api/v1/explain', { method: 'POST', body: { origin: origin.value, method: method.value, url: url.value, headers: hs, credentials: creds.checked } });
      out.replaceChildren(view(r.explanation, r.version));
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
}

function view(x, version) {
  const ok = x.legs.every((l) => l.verdict.verdict === 'allowed');
  const overall = x.legs.some((l) => l.verdict.verdict === 'blocked') ? 'blocked' : ok ? 'allowed' : 'backend';
  return el('div', { 'data-overall': overall },
    el('p', { id: 'ex-overall', class: overall === 'blocked' ? 'verdict-blocked' : overall === 'allowed' ? 'verdict-allowed' : 'warn' },
      overall === 'blocked' ? 'The browser blocks this call.' : overall === 'allowed' ? 'The script can read the response.' : "The backend's own answer decides."),
    el('p', { class: 'muted' }, `Against active version ${version}. `, x.same_origin ? 'Same origin: CORS does not apply. ' : '',
      x.preflight_because.length ? `Preflight sent because: ${x.preflight_because.join('; ')}.` : 'A simple request: no preflight.'),
    x.legs.map((l) => el('div', { class: 'panel leg', 'data-kind': l.kind, 'data-verdict': l.verdict.verdict },
      el('h2', {}, `${l.kind === 'preflight' ? 'Preflight' : 'Actual request'}: ${l.method} ${l.target}`),
      el('p', {}, `vService ${l.vservice}, rule ${l.rule ?? '(none)'}, policy ${l.policy ?? '(none)'} — ${l.binding}.`),
      el('p', {}, 'Answer: ', l.answer.by === 'gateway' ? `corsgate answers ${l.answer.status}` : `forwarded to ${l.answer.upstream}; corsgate writes the CORS headers`),
      el('pre', {}, l.answer.headers.map(([k, v]) => `${k}: ${v}`).join('\n') || '(no CORS headers)'),
      el('p', { class: l.verdict.verdict === 'blocked' ? 'verdict-blocked' : l.verdict.verdict === 'allowed' ? 'verdict-allowed' : 'warn' },
        `Browser: ${l.verdict.verdict}`, l.verdict.reasons && l.verdict.reasons.length ? ` — ${l.verdict.reasons.join('; ')}` : ''))),
    x.readable_headers.length ? el('p', {}, `Readable beyond the safelisted headers: ${x.readable_headers.join(', ')}`) : null);
}
