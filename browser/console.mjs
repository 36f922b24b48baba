// The console's end-to-end suite in a real browser.
//
// Debian's Chromium (headless, driven by playwright-core) signs in to the
// console of a real `corsgate run` (admin section, SQLite store under a
// temporary --data-dir) and drives every page, while a real data plane
// forwards to a loopback backend. Each scenario asserts what the page
// shows and what the gateway then does: the answers of the data plane to
// real requests, the store's versions, the audit chain. axe-core checks
// every page; screenshots of every page at 1280×800 and 390×844 are
// written to target/console-screenshots/.
//
// Usage: node browser/console.mjs   (needs target/debug/corsgate: cargo build -p corsgate)

import { chromium } from 'playwright-core';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.CORSGATE_BIN || path.join(ROOT, 'target', 'debug', 'corsgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS || path.join(ROOT, 'target', 'console-screenshots');
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PAGES = ['overview', 'policies', 'edit', 'history', 'audit', 'explain', 'shadow', 'fleet', 'traffic'];
const EDITOR = crypto.randomBytes(24).toString('hex');
const VIEWER = crypto.randomBytes(24).toString('hex');
const sha = (t) => crypto.createHash('sha256').update(t).digest('hex');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

class Failure extends Error {}
function expect(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// ------------------------------------------------------------ servers
const seen = [];
const backend = http.createServer((req, res) => {
  seen.push({ method: req.method, path: req.url });
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`backend ${req.method} ${req.url}`);
});
// Pages of other sites: a cross-site form aimed at the admin API.
let adminUrl = '';
const sites = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  if (req.url.startsWith('/forge')) {
    // enctype=text/plain makes the body look like JSON: {"base":..,"to":1,"comment":"x="}
    res.end(`<!doctype html><title>forge</title><form id=f method=POST enctype="text/plain" action="${adminUrl}/api/v1/rollback">` +
      `<input name='{"to":1,"base":null,"comment":"x' value='"}'></form><script>document.getElementById('f').submit()</script>`);
  } else res.end('<!doctype html><title>site</title><p>site</p>');
});

function config(p) {
  const o = (h) => `http://${h}:${p.sites}`;
  return `policies:
  public:
    allowOrigins: ["${o('app.example.com')}"]
    allowMethods: [GET, POST, PUT]
    allowHeaders: [Content-Type, X-Request-ID]
    exposeHeaders: [X-Exposed]
    allowCredentials: true
    maxAge: 600
  partner:
    allowOrigins: ["${o('partner.example.com')}"]
    allowMethods: [GET]
    maxAge: 60
    tests: { allow: ["${o('partner.example.com')}"], deny: ["${o('evil.example.com')}"] }
cors: public
admin:
  listen: "127.0.0.1:${p.admin}"
  tokens:
    - { name: ed, sha256: "${sha(EDITOR)}", role: editor }
    - { name: val, sha256: "${sha(VIEWER)}", role: viewer }
vservices:
  - name: api
    listen: "127.0.0.1:${p.gateway}"
    pathCors:
      - { prefix: /partner, cors: partner }
    rules:
      - name: health
        match: { path: { exact: /health } }
        direct: { status: 200, body: "ok" }
      - name: backend
        match: { path: { prefix: / } }
        forward: { upstreams: ["http://127.0.0.1:${p.backend}"] }
`;
}

async function startGateway(p) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corsgate-console-'));
  const file = path.join(dir, 'gw.yaml');
  fs.writeFileSync(file, config(p));
  const data = path.join(dir, 'data');
  const child = spawn(BIN, ['run', '--config', file, '--data-dir', data, '--log-format', 'json', '--no-watch'], {
    env: { ...process.env, RUST_LOG: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d.toString(); });
  child.stdout.on('data', (d) => { log += d.toString(); });
  const deadline = Date.now() + 20000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${p.admin}/ready`).then((r) => r.ok).catch(() => false);
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`corsgate did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { file, db: path.join(data, 'corsgate.db'), log: () => log, stop() { child.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); } };
}

// A real request to the data plane: the ACAO it answers `origin` with.
async function acao(p, origin, pathname = '/items') {
  const r = await fetch(`http://127.0.0.1:${p.gateway}${pathname}`, { headers: { origin, host: `api.example.com:${p.gateway}` } });
  await r.text();
  return r.headers.get('access-control-allow-origin');
}

async function bearer(p, pathname) {
  const r = await fetch(`http://127.0.0.1:${p.admin}${pathname}`, { headers: { authorization: `Bearer ${EDITOR}` } });
  return r.json();
}

// ------------------------------------------------------------ the browser
const consoleErrors = [];
const headerProblems = [];
function watch(page, p) {
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url || '';
    // Only errors the suite provokes on purpose (a wrong token, a stale
    // apply, ...): the pages themselves cause no failed load.
    if (/Failed to load resource/.test(m.text()) && page.__expected.some((re) => re.test(url))) return;
    consoleErrors.push(`${m.text()} (${url})`);
  });
  page.__expected = [];
  page.on('response', (r) => {
    if (!r.url().startsWith(`http://127.0.0.1:${p.admin}/`)) return;
    const h = r.headers();
    const miss = ['content-security-policy', 'x-content-type-options', 'referrer-policy'].filter((k) => !h[k]);
    if (miss.length || !/frame-ancestors 'none'/.test(h['content-security-policy'] || '') || /unsafe/.test(h['content-security-policy'] || '')) {
      headerProblems.push(`${r.url()}: ${miss.join(', ') || h['content-security-policy']}`);
    }
  });
}

async function signIn(page, p, token) {
  await page.goto(`http://127.0.0.1:${p.admin}/ui/`);
  await page.fill('#token', token);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])', { timeout: 5000 });
}

async function open(page, name) {
  await page.evaluate((n) => { location.hash = `#/${n}`; }, name);
  await page.waitForSelector(`section[data-page="${name}"][aria-busy="false"]`, { timeout: 8000 });
}

async function axe(page, label) {
  await page.evaluate(AXE);
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(!bad.length, `axe on ${label}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`).join(' | ')}`);
}

function scenarios(p, gw) {
  const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
  return [
    ['a wrong token is refused; the right one signs in', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      page.__expected.push(/\/ui\/login$/);
      await page.goto(`http://127.0.0.1:${p.admin}/ui/`);
      await page.fill('#token', 'not-a-token');
      await page.click('#signin-form button[type=submit]');
      await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
      expect(/not accepted/.test(await text(page, '#signin-error')), 'wrong token: no refusal shown');
      expect(await page.$eval('#nav', (n) => n.hidden), 'wrong token: navigation shown');
      await page.fill('#token', EDITOR);
      await page.click('#signin-form button[type=submit]');
      await page.waitForSelector('#nav:not([hidden])');
      expect((await text(page, '#who')) === 'ed (editor)', `signed in as ${await text(page, '#who')}`);
      const cookies = await ctx.cookies();
      const c = cookies.find((k) => k.name === 'corsgate_session');
      expect(c && c.httpOnly && c.sameSite === 'Strict', `session cookie ${JSON.stringify(c)}`);
      expect(await page.evaluate(() => document.cookie) === '', 'the session cookie is readable by scripts');
    }],
    ['every page renders the live state, passes axe, and is photographed at desktop and phone width', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      fs.mkdirSync(SHOTS, { recursive: true });
      await signIn(page, p, EDITOR);
      const live = {
        overview: async () => {
          const rows = await page.$$eval('table tbody tr', (trs) => trs.map((t) => t.textContent));
          expect(rows.some((r) => r.includes('backend') && r.includes('public') && r.includes('global')), `overview: backend rule not shown bound globally to public: ${rows.join(' / ')}`);
          expect(rows.some((r) => r.includes(`127.0.0.1:${p.gateway}`)), 'overview: listener missing');
        },
        policies: async () => {
          expect((await page.textContent('main')).includes(`http://partner.example.com:${p.sites}`), 'policies: partner origin missing');
          // Each policy test is listed with its result.
          const tests = await page.textContent('#policy-tests');
          expect(tests.includes('tests.deny[0]') && tests.includes(`http://evil.example.com:${p.sites}`) && /passed/.test(tests), `policies: tests not listed: ${tests}`);
          expect((await page.textContent('#policy-tests-summary')).startsWith('2 policy test(s), 0 failed'), 'policies: test summary');
        },
        edit: async () => expect((await page.inputValue('#config-editor')).includes(`127.0.0.1:${p.admin}`), 'edit: active content not loaded'),
        history: async () => expect((await page.textContent('main')).includes('(active)'), 'history: no active version'),
        audit: async () => expect((await page.getAttribute('#audit-verdict', 'data-intact')) === 'true', 'audit: chain not verified'),
        explain: async () => expect(await page.$('#ex-run'), 'explain: no form'),
        shadow: async () => expect(await page.$('[data-shadowing="false"]'), 'shadow: state missing'),
        fleet: async () => expect((await page.getAttribute('#fleet-mode', 'data-mode')) === 'single' && (await page.textContent('main')).includes('in sync'), 'fleet: single-instance view missing'),
        traffic: async () => {
          expect((await page.$$('#traffic-charts svg')).length === 3, 'traffic: charts missing');
          const label = await page.getAttribute('#chart-decisions svg', 'aria-label');
          expect(/public allowed 6\b/.test(label) && /partner allowed 2\b/.test(label), `traffic: decisions chart says ${label}`);
          const refused = await page.getAttribute('#chart-refused svg', 'aria-label');
          expect(refused.includes(`evil.example.com:${p.sites} 3`), `traffic: refused chart says ${refused}`);
        },
      };
      // Traffic for the charts: allowed, refused and partner requests.
      for (let i = 0; i < 6; i++) await acao(p, `http://app.example.com:${p.sites}`);
      for (let i = 0; i < 3; i++) await acao(p, `http://evil.example.com:${p.sites}`);
      await acao(p, `http://other.example.net:${p.sites}`);
      for (let i = 0; i < 2; i++) await acao(p, `http://partner.example.com:${p.sites}`, '/partner/feed');
      for (const name of PAGES) {
        for (const [w, h, tag] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
          await page.setViewportSize({ width: w, height: h });
          await open(page, name);
          if (name === 'traffic') await page.waitForFunction(() => document.querySelector('#chart-refused svg')?.getAttribute('aria-label').includes('evil'), null, { timeout: 5000 });
          await live[name]();
          const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
          expect(!wide || tag === 'desktop', `${name} at ${tag} width scrolls sideways`);
          await page.screenshot({ path: path.join(SHOTS, `${name}-${tag}.png`), fullPage: true });
          if (tag === 'desktop') await axe(page, name);
        }
      }
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.goto(`http://127.0.0.1:${p.admin}/ui/`);
      page.__expected.push(/\/ui\/logout$/);
      const noCsrf = await page.evaluate(async () => (await fetch('/ui/logout', { method: 'POST' })).status);
      expect(noCsrf === 403, `sign-out without the CSRF token: ${noCsrf}`);
      await page.reload();
      await page.waitForSelector('#nav:not([hidden])');
      await page.click('#signout');
      await page.waitForSelector('#signin:not([hidden])');
      await page.screenshot({ path: path.join(SHOTS, 'signin-desktop.png') });
      await axe(page, 'sign-in');
    }],
    ['keyboard: the navigation and the sign-in form work without a mouse', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await page.goto(`http://127.0.0.1:${p.admin}/ui/`);
      await page.waitForSelector('#signin:not([hidden])');
      await page.keyboard.type(EDITOR); // the token field has focus
      await page.keyboard.press('Enter');
      await page.waitForSelector('#nav:not([hidden])');
      await page.focus('nav a[href="#/history"]');
      await page.keyboard.press('Enter');
      await page.waitForSelector('section[data-page="history"][aria-busy="false"]');
    }],
    ['a viewer sees no edit controls and a forged apply from its session gets 403', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      page.__expected.push(/\/api\/v1\/versions$/);
      await signIn(page, p, VIEWER);
      for (const name of ['edit', 'history', 'shadow']) {
        await open(page, name);
        if (name === 'edit') {
          await page.click('#validate');
          await page.waitForSelector('#validation-result');
        }
        for (const sel of ['#apply', '[data-rollback]', '#shadow-start', '#shadow-promote', '#apply-comment']) {
          expect(!(await page.$(sel)), `viewer sees ${sel} on ${name}`);
        }
      }
      const before = (await bearer(p, '/api/v1/versions')).versions.length;
      const forged = await page.evaluate(async () => {
        const s = await (await fetch('/ui/session')).json();
        const active = await (await fetch('/api/v1/versions/active')).json();
        const r = await fetch('/api/v1/versions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf }, body: JSON.stringify({ base: active.id, comment: 'forged', content: active.content }) });
        return r.status;
      });
      expect(forged === 403, `forged apply from the viewer's session: ${forged}`);
      await open(page, 'explain');
      await page.fill('#ex-url', `http://api.example.com:${p.gateway}/items`);
      await page.click('#ex-run');
      await page.waitForSelector('#ex-result [data-overall]', { timeout: 5000 });
      expect((await bearer(p, '/api/v1/versions')).versions.length === before, 'the forged apply changed the history');
    }],
    ['an invalid origin is shown at its line before anything is applied', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'edit');
      const content = await page.inputValue('#config-editor');
      const bad = `http://partner.example.com:${p.sites}`;
      const line = content.split('\n').findIndex((l) => l.includes(bad)) + 1;
      await page.fill('#config-editor', content.replace(bad, 'partner.example.com/x'));
      await page.click('#validate');
      await page.waitForSelector('#validation-result');
      expect(/Refused/.test(await text(page, '#validation-result')), 'invalid edit not refused');
      const lines = await page.$$eval('#validation-errors li', (l) => l.map((e) => e.dataset.line));
      expect(lines.includes(String(line)), `error not at line ${line}: ${lines}`);
      expect(await page.$(`.gutter span.err[data-line="${line}"]`), `line ${line} not marked in the editor`);
      // The marked number sits beside its line of text, and is in view.
      const align = await page.evaluate((n) => {
        const area = document.getElementById('config-editor');
        const mark = document.querySelector(`.gutter span[data-line="${n}"]`).getBoundingClientRect();
        const cs = getComputedStyle(area);
        const textTop = area.getBoundingClientRect().top + parseFloat(cs.paddingTop) + (n - 1) * parseFloat(cs.lineHeight) - area.scrollTop;
        const box = document.querySelector('.editor').getBoundingClientRect();
        return { off: Math.abs(mark.top - textTop), visible: mark.top >= box.top && mark.bottom <= box.bottom };
      }, line);
      expect(align.off < 3 && align.visible, `line ${line}: number ${align.off.toFixed(1)} px from its text, visible ${align.visible}`);
      expect(!(await page.$('#apply')), 'apply offered for an invalid edit');
      expect((await bearer(p, '/api/v1/versions')).versions.length === 1, 'something was applied');
      await page.screenshot({ path: path.join(SHOTS, 'edit-error-desktop.png'), fullPage: true });
    }],
    ['a valid edit shows its diff, is applied with a comment, and the data plane serves it', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'edit');
      await page.click('#reset');
      await page.waitForSelector('section[data-page="edit"] #config-editor');
      const app2 = `http://app2.example.com:${p.sites}`;
      expect(await acao(p, app2) === null, 'app2 allowed before the edit');
      const content = await page.inputValue('#config-editor');
      await page.fill('#config-editor', content.replace(`"http://app.example.com:${p.sites}"]`, `"http://app.example.com:${p.sites}", "${app2}"]`));
      await page.click('#validate');
      await page.waitForSelector('#apply');
      expect((await text(page, '[data-diff="changes"]')).includes(app2), 'the diff does not show the added origin');
      await page.click('#apply');
      expect(/comment is required/.test(await text(page, '#apply-outcome')), 'applied without a comment');
      await page.fill('#apply-comment', 'open app2');
      page.once('dialog', (d) => d.accept());
      await page.click('#apply');
      await page.waitForFunction(() => /Applied as version/.test(document.getElementById('apply-outcome').textContent));
      expect(await acao(p, app2) === app2, 'the data plane does not serve the applied edit');
      const v = await bearer(p, '/api/v1/versions/active');
      expect(v.id === 2 && v.author === 'ed' && v.comment === 'open app2', `active ${v.id} by ${v.author}: ${v.comment}`);
    }],
    ['a stale edit gets 409 explained and the edit is kept', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      page.__expected.push(/\/api\/v1\/versions$/);
      await signIn(page, p, EDITOR);
      await open(page, 'edit');
      const content = await page.inputValue('#config-editor');
      const edited = content.replace('maxAge: 60\n', 'maxAge: 30\n');
      await page.fill('#config-editor', edited);
      await page.click('#validate');
      await page.waitForSelector('#apply');
      // Someone else applies meanwhile (the same content as active: a new version).
      const active = await bearer(p, '/api/v1/versions/active');
      const r = await fetch(`http://127.0.0.1:${p.admin}/api/v1/versions`, { method: 'POST', headers: { authorization: `Bearer ${EDITOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ base: active.id, comment: 'meanwhile', content: active.content }) });
      expect(r.status === 201, `concurrent apply: ${r.status}`);
      await page.fill('#apply-comment', 'shorter partner cache');
      page.once('dialog', (d) => d.accept());
      await page.click('#apply');
      await page.waitForSelector('#rebase');
      expect(/applied by someone else/.test(await text(page, '#apply-outcome')), '409 not explained');
      expect((await page.inputValue('#config-editor')) === edited, 'the edit was lost');
      // Put the history back to one change after version 2 for the next scenarios.
      const roll = await fetch(`http://127.0.0.1:${p.admin}/api/v1/rollback`, { method: 'POST', headers: { authorization: `Bearer ${EDITOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ base: active.id + 1, to: 2, comment: 'undo meanwhile' }) });
      expect(roll.status === 201, `reset: ${roll.status}`);
    }],
    ['rollback from History restores the previous answer', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'history');
      const app2 = `http://app2.example.com:${p.sites}`;
      expect(await acao(p, app2) === app2, 'app2 not allowed before rollback');
      await page.selectOption('#diff-from', '1');
      await page.selectOption('#diff-to', '2');
      await page.click('#diff-show');
      await page.waitForFunction((o) => document.getElementById('diff-result').textContent.includes(o), app2);
      await page.click('[data-rollback="1"]');
      // The comment is asked for in a labelled form, not a dialog.
      await page.fill('#rollback-comment', 'app2 broke checkout');
      await page.click('#rollback-confirm');
      await page.waitForFunction(() => /Rolled back/.test(document.getElementById('history-outcome')?.textContent || ''));
      expect(await acao(p, app2) === null, 'app2 still allowed after the rollback');
      expect(await acao(p, `http://app.example.com:${p.sites}`) === `http://app.example.com:${p.sites}`, 'app lost after rollback');
    }],
    ['the explain page agrees with `corsgate explain --json` on a table of requests', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'explain');
      const api = `http://api.example.com:${p.gateway}`;
      const app = `http://app.example.com:${p.sites}`;
      const partner = `http://partner.example.com:${p.sites}`;
      const table = [
        [app, 'GET', `${api}/items`, [], false],
        [app, 'GET', `${api}/items`, [], true],
        [app, 'PUT', `${api}/items/1`, [['X-Request-ID', '1']], true],
        [app, 'DELETE', `${api}/items/1`, [], false],
        [app, 'POST', `${api}/items`, [['Content-Type', 'application/json']], false],
        [app, 'POST', `${api}/items`, [['X-Secret', 'y']], false],
        [`http://evil.example.com:${p.sites}`, 'GET', `${api}/items`, [], false],
        [partner, 'GET', `${api}/partner/feed`, [], false],
        [partner, 'GET', `${api}/items`, [], false],
        [partner, 'PUT', `${api}/partner/feed`, [], false],
        [app, 'GET', `${api}/partner/feed`, [], false],
        [app, 'GET', `${api}/health`, [], false],
        ['null', 'GET', `${api}/items`, [], false],
      ];
      for (const [origin, method, url, headers, creds] of table) {
        const args = ['explain', '--config', gw.file, '--origin', origin, '--method', method, '--url', url, '--json'];
        for (const [k, v] of headers) args.push('-H', `${k}: ${v}`);
        if (creds) args.push('--credentials', 'include');
        const cli = spawnSync(BIN, args, { encoding: 'utf8' });
        expect(cli.status === 0 || cli.status === 1, `corsgate explain: ${cli.stderr}`);
        const want = JSON.parse(cli.stdout).legs.map((l) => ({ kind: l.kind, verdict: l.verdict.verdict, reasons: (l.verdict.reasons || []).join('; ') }));
        await page.fill('#ex-origin', origin);
        await page.fill('#ex-method', method);
        await page.fill('#ex-url', url);
        await page.fill('#ex-headers', headers.map(([k, v]) => `${k}: ${v}`).join('\n'));
        await page.setChecked('#ex-credentials', creds);
        await page.$eval('#ex-result', (e) => e.replaceChildren());
        await page.click('#ex-run');
        await page.waitForSelector('#ex-result [data-overall]');
        const got = await page.$$eval('#ex-result .leg', (legs) => legs.map((l) => ({ kind: l.dataset.kind, verdict: l.dataset.verdict, text: l.textContent })));
        const label = `${method} ${url} from ${origin}${creds ? ' with credentials' : ''}`;
        expect(got.length === want.length, `${label}: ${got.length} legs on the page, ${want.length} from the CLI`);
        want.forEach((w, i) => {
          expect(got[i].kind === w.kind && got[i].verdict === w.verdict, `${label}: leg ${i} page ${got[i].kind}/${got[i].verdict}, CLI ${w.kind}/${w.verdict}`);
          expect(got[i].text.includes(w.reasons), `${label}: leg ${i} reason "${w.reasons}" not shown`);
        });
      }
      gw.explained = table.length;
      await page.screenshot({ path: path.join(SHOTS, 'explain-result-desktop.png'), fullPage: true });
    }],
    ["a shadow candidate's newly refused origin appears after traffic", async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'shadow');
      const app = `http://app.example.com:${p.sites}`;
      const content = await page.inputValue('#shadow-candidate');
      await page.fill('#shadow-candidate', content.replace(`["${app}"]`, `["http://app3.example.com:${p.sites}"]`));
      await page.fill('#shadow-comment', 'drop app');
      await page.click('#shadow-start');
      await page.waitForSelector('[data-shadowing="true"]');
      for (let i = 0; i < 3; i++) expect(await acao(p, app) === app, 'shadowing changed the live answer');
      await page.waitForFunction((o) => document.getElementById('newly-refused')?.textContent.includes(o), app, { timeout: 6000 });
      await page.screenshot({ path: path.join(SHOTS, 'shadow-findings-desktop.png'), fullPage: true });
      await page.click('#shadow-stop');
      await page.waitForSelector('[data-shadowing="false"]');
    }],
    ['a cross-site form post changes nothing; the token is in no URL, storage or log', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      await open(page, 'history');
      const before = (await bearer(p, '/api/v1/versions')).versions.length;
      const evil = await ctx.newPage();
      const navs = [];
      evil.on('request', (r) => navs.push(r.url()));
      await evil.goto(`http://evil.example.com:${p.sites}/forge`);
      await evil.waitForLoadState('load');
      await new Promise((r) => setTimeout(r, 500));
      const status = await evil.evaluate(() => document.body.textContent);
      expect(/valid bearer token|not allow|X-CSRF|origin/i.test(status), `the forged post was not refused: ${status.slice(0, 200)}`);
      expect((await bearer(p, '/api/v1/versions')).versions.length === before, 'the cross-site post changed the history');
      const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
      expect(!storage.includes(EDITOR), 'token in web storage');
      expect(!page.url().includes(EDITOR) && !navs.some((u) => u.includes(EDITOR)), 'token in a URL');
      expect(!gw.log().includes(EDITOR) && !gw.log().includes(VIEWER), 'token in the gateway log');
    }],
    ['a tampered audit row is shown broken at that entry', async (ctx) => {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      const r = spawnSync('sqlite3', [gw.db, "UPDATE audit SET actor = 'mallory' WHERE seq = 2"], { encoding: 'utf8' });
      expect(r.status === 0, `sqlite3: ${r.stderr}`);
      await open(page, 'audit');
      expect((await page.getAttribute('#audit-verdict', 'data-intact')) === 'false', 'tampered chain shown intact');
      expect((await page.getAttribute('#audit-verdict', 'data-first-bad')) === '2', `first bad entry: ${await page.getAttribute('#audit-verdict', 'data-first-bad')}`);
      const bad = await page.$$eval('tr.bad td:first-child', (t) => t.map((e) => e.textContent));
      expect(bad.length === 1 && bad[0] === '2', `highlighted rows: ${bad}`);
      await page.screenshot({ path: path.join(SHOTS, 'audit-broken-desktop.png'), fullPage: true });
      await axe(page, 'audit (broken)');
    }],
  ];
}

// ------------------------------------------------------------ fleet
// Two gateways on one etcd member (etcd-server, installed by
// scripts/test.sh): the Fleet page of one lists both, in sync.
async function startEtcd() {
  const client = await freePort();
  const peer = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corsgate-console-etcd-'));
  const child = spawn('etcd', ['--name', 'm0', '--data-dir', path.join(dir, 'm0'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `m0=http://127.0.0.1:${peer}`, '--log-level', 'error'], { stdio: 'ignore' });
  const deadline = Date.now() + 20000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${client}/health`).then((r) => r.json()).then((j) => j.health === 'true').catch(() => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('etcd did not start (apt-get install etcd-server)');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint: `http://127.0.0.1:${client}`, stop() { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function startFleetGateway(endpoint, node) {
  const admin = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corsgate-console-fleet-'));
  const file = path.join(dir, 'gw.yaml');
  fs.writeFileSync(file, `policies:
  p: { allowOrigins: ["https://app.example.com"], allowMethods: [GET] }
cors: p
admin:
  listen: "127.0.0.1:${admin}"
  tokens:
    - { name: ed, sha256: "${sha(EDITOR)}", role: editor }
  store:
    etcd: { endpoints: ["${endpoint}"], leaseSeconds: 3 }
vservices:
  - name: api
    listen: "127.0.0.1:0"
    rules:
      - direct: { status: 200, body: ok }
`);
  const child = spawn(BIN, ['run', '--config', file, '--data-dir', path.join(dir, 'data'), '--node', node, '--no-watch'], { stdio: 'ignore' });
  const deadline = Date.now() + 20000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.ok).catch(() => false);
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`fleet gateway ${node} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { admin, stop() { child.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function fleetScenario(browser) {
  const etcd = await startEtcd();
  const started = [];
  try {
    for (const node of ['edge-1', 'edge-2']) started.push(await startFleetGateway(etcd.endpoint, node));
    const p = { admin: started[0].admin };
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      watch(page, p);
      await signIn(page, p, EDITOR);
      for (const [w, h, tag] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
        await page.setViewportSize({ width: w, height: h });
        await open(page, 'fleet');
        await page.waitForFunction(() => document.querySelectorAll('[data-state="in-sync"]').length === 2, null, { timeout: 8000 })
          .catch(() => {});
        expect((await page.getAttribute('#fleet-mode', 'data-mode')) === 'fleet', 'fleet page: not in fleet mode');
        const states = await page.$$eval('[data-state]', (e) => e.map((x) => x.getAttribute('data-state')));
        expect(states.length === 2 && states.every((x) => x === 'in-sync'), `fleet page states: ${states}`);
        const text = await page.textContent('main');
        expect(text.includes('edge-1 (this instance)') && text.includes('edge-2'), 'fleet page: nodes not named');
        await page.screenshot({ path: path.join(SHOTS, `fleet-etcd-${tag}.png`), fullPage: true });
        if (tag === 'desktop') await axe(page, 'fleet (etcd)');
      }
    } finally {
      await ctx.close();
    }
  } finally {
    started.forEach((g) => g.stop());
    etcd.stop();
  }
}

async function main() {
  const started = Date.now();
  const p = { backend: await freePort(), sites: await freePort(), admin: await freePort(), gateway: await freePort() };
  adminUrl = `http://127.0.0.1:${p.admin}`;
  await new Promise((r) => backend.listen(p.backend, '127.0.0.1', r));
  await new Promise((r) => sites.listen(p.sites, '127.0.0.1', r));
  const gw = await startGateway(p);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * 127.0.0.1'],
  });
  const results = [];
  try {
    for (const [name, fn] of scenarios(p, gw)) {
      const ctx = await browser.newContext();
      const t0 = Date.now();
      let error = null;
      try { await fn(ctx); } catch (e) { error = e; } finally { await ctx.close(); }
      results.push({ name, passed: !error });
      console.log(`${error ? 'FAIL' : 'PASS'} ${name} (${Date.now() - t0} ms)${error ? ` — ${error.message}` : ''}`);
    }
    {
      const name = 'the fleet page lists every instance on the etcd store, in sync';
      const t0 = Date.now();
      let error = null;
      try { await fleetScenario(browser); } catch (e) { error = e; }
      results.push({ name, passed: !error });
      console.log(`${error ? 'FAIL' : 'PASS'} ${name} (${Date.now() - t0} ms)${error ? ` — ${error.message}` : ''}`);
    }
    const checks = [
      ['no console errors on any page', consoleErrors],
      ['CSP, nosniff and Referrer-Policy on every console response', headerProblems],
    ];
    for (const [name, problems] of checks) {
      results.push({ name, passed: !problems.length });
      console.log(`${problems.length ? 'FAIL' : 'PASS'} ${name}${problems.length ? ` — ${[...new Set(problems)].slice(0, 5).join(' | ')}` : ''}`);
    }
  } finally {
    await browser.close();
    gw.stop();
    backend.close();
    sites.close();
  }
  const failed = results.filter((r) => !r.passed);
  console.log(`explain page compared with the CLI on ${gw.explained || 0} requests; screenshots in ${path.relative(ROOT, SHOTS)}/`);
  console.log(`\n${results.length - failed.length}/${results.length} console checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s (Chromium ${browser.version()})`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
