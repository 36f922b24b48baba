// Traffic: CORS decisions by policy and reason, and the most refused
// origins, from /metrics, redrawn every few seconds.
import { api, el, every, barChart, parseMetrics } from '../lib.js';

const sum = (rows, key) => {
  const m = new Map();
  for (const r of rows) m.set(key(r), (m.get(key(r)) || 0) + r.value);
  return [...m].map(([label, value]) => ({ label, value })).filter((b) => b.value > 0).sort((a, b) => b.value - a.value);
};

export async function render(root) {
  root.append(el('h1', {}, 'Traffic'), el('p', { class: 'muted' }, 'From this node\'s metrics since start; refreshed every 3 s.'));
  const charts = el('div', { class: 'charts', id: 'traffic-charts' });
  const stamp = el('p', { class: 'muted', id: 'traffic-updated', 'aria-live': 'off' });
  root.append(charts, stamp);
  const draw = async () => {
    const rows = parseMetrics(await api('/metrics'));
    const decisions = rows.filter((r) => r.name === 'corsgate_cors_decisions_total');
    const refused = rows.filter((r) => r.name === 'corsgate_cors_refused_origins_total');
    const fig = (id, title, bars, color) => el('figure', { id }, el('figcaption', {}, el('strong', {}, title)), barChart(title, bars.slice(0, 10), { color }));
    charts.replaceChildren(
      fig('chart-decisions', 'CORS decisions by policy', sum(decisions, (r) => `${r.labels.policy} ${r.labels.decision}`)),
      fig('chart-reasons', 'Decisions by reason', sum(decisions, (r) => (r.labels.reason ? `${r.labels.decision}: ${r.labels.reason}` : r.labels.decision))),
      fig('chart-refused', 'Top refused origins', sum(refused, (r) => r.labels.origin), '#b00020'));
    stamp.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  };
  await draw();
  every(3000, () => draw().catch(() => {}));
}
