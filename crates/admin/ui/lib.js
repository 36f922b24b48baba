// Shared by every page: the API client (session cookie + CSRF header),
// DOM helpers, and the small SVG charts.

export const session = { name: null, role: null, csrf: null };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// Call the admin API. Reads send no token: the HttpOnly cookie does.
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = session.csrf || '';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const canEdit = () => session.role === 'editor' || session.role === 'admin';

// el('tag', {attrs}, ...children): text children are text nodes, never HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function table(headers, rows, { caption, rowClass } = {}) {
  // Focusable so a keyboard can scroll a wide table (axe: scrollable-region-focusable).
  return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': caption || `table: ${headers.join(', ')}` }, el('table', {},
    caption ? el('caption', { class: 'muted' }, caption) : null,
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r, i) => el('tr', { class: rowClass ? rowClass(i) : null }, r.map((c) => el('td', {}, c)))))));
}

export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return el('div', {}, el('label', { for: id }, label), input);
}

export function errorBox(e) {
  const lines = [e.message];
  if (e.body && Array.isArray(e.body.errors)) lines.push(...e.body.errors.map(String));
  return el('div', { class: 'panel error', role: 'alert' }, lines.map((l) => el('div', {}, l)));
}

// A timer that the router clears when the page changes.
let timers = [];
export function every(ms, fn) { timers.push(setInterval(fn, ms)); }
export function clearTimers() { timers.forEach(clearInterval); timers = []; }

// ------------------------------------------------------------- metrics
// Parse Prometheus text: [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// Horizontal bar chart as SVG; bars = [{label, value}].
export function barChart(title, bars, { color = '#0b5cad' } = {}) {
  const NS = 'http://www.w3.org/2000/svg';
  const w = 560, rowH = 26, left = 250, top = 8;
  const h = top * 2 + Math.max(1, bars.length) * rowH;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${title}: ` + (bars.length ? bars.map((b) => `${b.label} ${b.value}`).join(', ') : 'no data yet'));
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  if (!bars.length) add('text', { x: 8, y: top + 14 }, 'no data yet');
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const bw = Math.max(1, Math.round(((w - left - 50) * b.value) / max));
    add('text', { x: left - 6, y: y + 17, 'text-anchor': 'end' }, b.label.length > 32 ? b.label.slice(0, 31) + '…' : b.label);
    add('rect', { x: left, y: y + 3, width: bw, height: rowH - 6, fill: color });
    add('text', { x: left + bw + 4, y: y + 17 }, String(b.value));
  });
  return svg;
}
