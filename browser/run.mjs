// corsgate's end-to-end suite in a real browser.
//
// Debian's Chromium (/usr/bin/chromium, headless), driven by playwright-core,
// loads pages from several origins (app.example.com, admin.example.com, …;
// --host-resolver-rules sends every name to 127.0.0.1) and calls corsgate on
// http://api.example.com:<port>. corsgate (the real binary) forwards to a
// loopback backend that records every request. Each scenario asserts what
// JavaScript sees (a response it can read, or a TypeError) and what reached
// the backend. Every fetch is also put to `corsgate explain`, whose verdict
// must agree with Chromium's. One scenario is also run against a
// deliberately mis-configured gateway and must then fail, so the suite can
// fail.
//
// Usage: node browser/run.mjs   (needs target/debug/corsgate: cargo build -p corsgate)

import { chromium } from 'playwright-core';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.CORSGATE_BIN || path.join(ROOT, 'target', 'debug', 'corsgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

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

// ---------------------------------------------------------------- backend
// Records every request. /cors-star sets its own ACAO: *; /status/503
// answers 503; /slow waits 3 s; /cacheable is cacheable for 60 s.
const seen = [];
const backend = http.createServer((req, res) => {
  seen.push({ method: req.method, path: req.url, headers: req.headers });
  const headers = { 'content-type': 'text/plain', 'x-exposed': 'yes', 'x-hidden': 'secret' };
  if (req.url.startsWith('/cors-star')) headers['access-control-allow-origin'] = '*';
  if (req.url.startsWith('/cacheable')) headers['cache-control'] = 'public, max-age=60';
  else headers['cache-control'] = 'no-store';
  if (req.url.startsWith('/status/503')) {
    res.writeHead(503, headers);
    res.end('backend unavailable');
    return;
  }
  const reply = () => {
    res.writeHead(200, headers);
    res.end(`backend ${req.method} ${req.url} #${seen.length}`);
  };
  if (req.url.startsWith('/slow')) setTimeout(reply, 3000);
  else reply();
});

// ------------------------------------------------------------ page server
const pages = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>corsgate browser test</title><p>page</p>');
});

function gatewayConfig(p) {
  const page = (host) => `http://${host}:${p.pages}`;
  const backendUrl = `http://127.0.0.1:${p.backend}`;
  const publicHeaders = p.broken ? '[Content-Type]' : '[Content-Type, X-Request-ID]';
  return `
policies:
  public:
    allowOrigins: ["${page('app.example.com')}", "${page('app2.example.com')}"]
    allowMethods: [GET, POST, PUT]
    allowHeaders: ${publicHeaders}
    exposeHeaders: [X-Exposed]
    maxAge: 600
  short:
    allowOrigins: ["${page('app.example.com')}"]
    allowMethods: [PUT]
    allowHeaders: [Content-Type]
    maxAge: 2
  admin:
    allowOrigins: ["${page('admin.example.com')}"]
    allowMethods: [GET, DELETE]
    allowHeaders: [Content-Type]
    exposeHeaders: [X-Exposed]
    allowCredentials: true
    maxAge: 60
  tenants:
    allowOrigins: ["http://*.apps.example.com:${p.pages}"]
    allowMethods: [GET]
  partner:
    allowOrigins: ["${page('portal.partner.example.net')}"]
    allowMethods: [POST, PUT]
    allowHeaders: [X-Partner-Key, Content-Type]
vservices:
  - name: api
    listen: "127.0.0.1:${p.gateway}"
    cors: public
    pathCors:
      - { prefix: /admin, cors: admin }
      - { prefix: /tenants, cors: tenants }
      - { prefix: /maxage, cors: short }
    rules:
      - name: partner
        match: { path: { prefix: /api }, headers: [{ name: x-partner-key }] }
        cors: partner
        forward: { upstreams: ["${backendUrl}"] }
      - name: dead
        match: { path: { prefix: /dead } }
        forward: { upstreams: ["http://127.0.0.1:${p.dead}"], connectTimeoutMs: 500 }
      - name: slow
        match: { path: { prefix: /slow } }
        forward: { upstreams: ["${backendUrl}"], timeoutMs: 500 }
      - name: backend
        forward: { upstreams: ["${backendUrl}"] }
`;
}

// ------------------------------------------------------------ corsgate
async function startGateway(p) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corsgate-browser-'));
  const file = path.join(dir, 'gw.yaml');
  fs.writeFileSync(file, gatewayConfig(p));
  const child = spawn(BIN, ['run', '--config', file, '--log-format', 'json', '--no-watch'], {
    env: { ...process.env, RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) {
      try {
        log.push(JSON.parse(l));
      } catch {
        // not a JSON line
      }
    }
  });
  const deadline = Date.now() + 15000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(p.gateway, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`corsgate did not start (${BIN})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    log,
    file,
    /** OPTIONS requests corsgate saw on paths starting with `prefix`. */
    options(prefix) {
      return log.filter((l) => l.target === 'corsgate::access' && l.fields?.method === 'OPTIONS' && l.fields?.path?.startsWith(prefix)).length;
    },
    stop() {
      child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------ helpers
class Failure extends Error {}
function expect(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// The configuration file of the gateway under test: every fetch made with
// callFrom is also run through `corsgate explain`, whose verdict must agree
// with what Chromium did.
let explainConfig = null;
let explainAgreements = 0;

function explainVerdict(origin, url, init) {
  const args = ['explain', '--config', explainConfig, '--origin', origin, '--url', url, '--json'];
  args.push('--method', init.method || 'GET');
  for (const [k, v] of Object.entries(init.headers || {})) args.push('-H', `${k}: ${v}`);
  if (init.credentials === 'include') args.push('--credentials', 'include');
  const r = spawnSync(BIN, args, { encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Failure(`corsgate explain failed: ${r.stderr}`);
  const e = JSON.parse(r.stdout);
  return { allowed: e.legs.every((l) => l.verdict.verdict === 'allowed'), legs: e.legs };
}

async function callFrom(context, origin, url, init = {}) {
  const result = await fetchFrom(context, origin, url, init);
  if (explainConfig) {
    const { allowed, legs } = explainVerdict(origin, url, init);
    expect(
      allowed === result.ok,
      `corsgate explain says ${allowed ? 'allowed' : 'blocked'} but Chromium ${result.ok ? 'allowed' : 'blocked'} ${init.method || 'GET'} ${url} from ${origin}: ${JSON.stringify(legs.map((l) => l.verdict))}`,
    );
    explainAgreements += 1;
  }
  return result;
}

async function fetchFrom(context, origin, url, init = {}) {
  const page = await context.newPage();
  try {
    await page.goto(`${origin}/`);
    return await page.evaluate(
      async ({ url, init }) => {
        try {
          const r = await fetch(url, init);
          const body = await r.text();
          return {
            ok: true,
            status: r.status,
            body,
            exposed: r.headers.get('x-exposed'),
            hidden: r.headers.get('x-hidden'),
          };
        } catch (e) {
          return { ok: false, error: `${e.name}: ${e.message}` };
        }
      },
      { url, init },
    );
  } finally {
    await page.close();
  }
}

function backendSaw(method, prefix) {
  return seen.filter((r) => r.method === method && r.path.startsWith(prefix));
}

// ------------------------------------------------------------ scenarios
function scenarios(p, api, gw) {
  const page = (host) => `http://${host}:${p.pages}`;
  const APP = page('app.example.com');
  const blocked = (r, what) => expect(!r.ok && r.error.startsWith('TypeError'), `${what}: expected a TypeError, got ${JSON.stringify(r)}`);
  const readable = (r, status, what) =>
    expect(r.ok && r.status === status, `${what}: expected a readable ${status}, got ${JSON.stringify(r)}`);
  return [
    ['allowed simple GET', async (ctx) => {
      const r = await callFrom(ctx, APP, `${api}/api/items`);
      readable(r, 200, 'GET');
      expect(r.body.startsWith('backend GET /api/items'), `body ${r.body}`);
      expect(backendSaw('GET', '/api/items').length === 1, 'backend did not get the GET once');
    }],
    ['refused origin: GET blocked (but forwarded), preflighted PUT blocked (never forwarded)', async (ctx) => {
      const evil = page('evil.example.net');
      blocked(await callFrom(ctx, evil, `${api}/api/items`), 'GET');
      expect(backendSaw('GET', '/api/items').length === 1, 'the actual GET is forwarded whatever the origin (R22)');
      blocked(await callFrom(ctx, evil, `${api}/api/items`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }), 'PUT');
      expect(backendSaw('PUT', '/').length === 0 && backendSaw('OPTIONS', '/').length === 0, 'the refused preflight or PUT reached the backend');
    }],
    ['preflighted PUT with a custom header allowed', async (ctx) => {
      const r = await callFrom(ctx, APP, `${api}/api/items/1`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-request-id': 'r1' }, body: '{}' });
      readable(r, 200, 'PUT');
      const puts = backendSaw('PUT', '/api/items/1');
      expect(puts.length === 1 && puts[0].headers['x-request-id'] === 'r1', 'backend did not get the PUT with its header');
      expect(backendSaw('OPTIONS', '/').length === 0, 'the preflight reached the backend');
      expect(gw.options('/api/items/1') === 1, `corsgate answered ${gw.options('/api/items/1')} preflights, expected 1`);
    }],
    ['method not in the policy blocked', async (ctx) => {
      blocked(await callFrom(ctx, APP, `${api}/api/items/2`, { method: 'DELETE' }), 'DELETE');
      expect(seen.length === 0, 'something reached the backend');
    }],
    ['header not in the policy blocked', async (ctx) => {
      blocked(await callFrom(ctx, APP, `${api}/api/items/3`, { method: 'PUT', headers: { 'x-tenant': 'acme' } }), 'PUT with x-tenant');
      expect(seen.length === 0, 'something reached the backend');
    }],
    ['credentials: include with cookies allowed by a credentialed policy, blocked by one without', async (ctx) => {
      await ctx.addCookies([{ name: 'session', value: 'abc', domain: 'api.example.com', path: '/', sameSite: 'Lax' }]);
      const r = await callFrom(ctx, page('admin.example.com'), `${api}/admin/users`, { credentials: 'include' });
      readable(r, 200, 'credentialed GET on /admin');
      const got = backendSaw('GET', '/admin/users');
      expect(got.length === 1 && (got[0].headers.cookie || '').includes('session=abc'), 'the cookie did not reach the backend');
      blocked(await callFrom(ctx, APP, `${api}/api/me`, { credentials: 'include' }), 'credentialed GET on /api (no credentials in the policy)');
    }],
    ['an exposed header is readable, an unexposed one is null', async (ctx) => {
      const r = await callFrom(ctx, APP, `${api}/api/headers`);
      readable(r, 200, 'GET');
      expect(r.exposed === 'yes', `x-exposed: ${r.exposed}`);
      expect(r.hidden === null, `x-hidden should be null, got ${r.hidden}`);
    }],
    ['max-age honoured, then expired', async (ctx) => {
      const pg = await ctx.newPage();
      await pg.goto(`${APP}/`);
      const put = () => pg.evaluate((u) => fetch(u, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status, (e) => String(e)), `${api}/maxage/x`);
      expect((await put()) === 200, 'first PUT');
      expect((await put()) === 200, 'second PUT');
      const within = gw.options('/maxage/x');
      expect(within === 1, `within maxAge (2 s) corsgate saw ${within} preflights, expected 1`);
      await new Promise((r) => setTimeout(r, 2600));
      expect((await put()) === 200, 'third PUT');
      const after = gw.options('/maxage/x');
      expect(after === 2, `after maxAge corsgate saw ${after} preflights, expected 2`);
      expect(backendSaw('PUT', '/maxage/x').length === 3, 'backend did not get three PUTs');
      await pg.close();
    }],
    ['a subdomain pattern accepts a tenant and refuses a look-alike', async (ctx) => {
      readable(await callFrom(ctx, page('tenant1.apps.example.com'), `${api}/tenants/data`), 200, 'tenant');
      blocked(await callFrom(ctx, page('tenant1.apps.example.com.evil.net'), `${api}/tenants/data`), 'look-alike');
      blocked(await callFrom(ctx, page('apps.example.com'), `${api}/tenants/data`), 'bare domain');
    }],
    ['/public and /admin policies on one vService', async (ctx) => {
      readable(await callFrom(ctx, APP, `${api}/api/public`), 200, 'app on /api');
      blocked(await callFrom(ctx, APP, `${api}/admin/x`), 'app on /admin');
      readable(await callFrom(ctx, page('admin.example.com'), `${api}/admin/x`), 200, 'admin on /admin');
      blocked(await callFrom(ctx, page('admin.example.com'), `${api}/api/public`), 'admin on /api');
    }],
    ['an upstream that sets Access-Control-Allow-Origin: * itself', async (ctx) => {
      // Readable from an allowed origin (two ACAO lines would fail the CORS
      // check), and the upstream's * does not leak to a refused origin.
      readable(await callFrom(ctx, APP, `${api}/cors-star/x`), 200, 'allowed origin');
      blocked(await callFrom(ctx, page('evil.example.net'), `${api}/cors-star/x`), 'refused origin');
    }],
    ['a backend 503 and the gateway’s 502 and 504 are readable by JavaScript', async (ctx) => {
      readable(await callFrom(ctx, APP, `${api}/status/503`), 503, 'backend 503');
      readable(await callFrom(ctx, APP, `${api}/dead/x`), 502, 'gateway 502');
      readable(await callFrom(ctx, APP, `${api}/slow/x`), 504, 'gateway 504');
    }],
    ['two same-site origins share the browser cache (Vary: Origin)', async (ctx) => {
      readable(await callFrom(ctx, APP, `${api}/cacheable/item`), 200, 'first origin');
      // Control: the response is cached (the same origin again does not
      // reach the backend), so the next step tests Vary, not a cache miss.
      readable(await callFrom(ctx, APP, `${api}/cacheable/item`), 200, 'first origin again');
      expect(backendSaw('GET', '/cacheable/item').length === 1, 'the response was not cached; the scenario would prove nothing');
      readable(await callFrom(ctx, page('app2.example.com'), `${api}/cacheable/item`), 200, 'second origin');
      expect(backendSaw('GET', '/cacheable/item').length === 2, 'the second origin was served the first one’s cached response');
    }],
    ['a header-conditioned partner route answers its preflight with the partner policy', async (ctx) => {
      const r = await callFrom(ctx, page('portal.partner.example.net'), `${api}/api/orders`, {
        method: 'POST',
        headers: { 'x-partner-key': 'k1', 'content-type': 'application/json' },
        body: '{}',
      });
      readable(r, 200, 'partner POST');
      const posts = backendSaw('POST', '/api/orders');
      expect(posts.length === 1 && posts[0].headers['x-partner-key'] === 'k1', 'backend did not get the partner POST');
      expect(backendSaw('OPTIONS', '/').length === 0, 'the preflight reached the backend');
      // The same origin without the header condition falls to the public
      // policy, which does not know it.
      blocked(await callFrom(ctx, page('portal.partner.example.net'), `${api}/api/orders`), 'partner origin on the public route');
    }],
  ];
}

// ------------------------------------------------------------ main
async function main() {
  const started = Date.now();
  const p = {
    backend: await freePort(),
    pages: await freePort(),
    gateway: await freePort(),
    dead: await freePort(),
  };
  await new Promise((r) => backend.listen(p.backend, '127.0.0.1', r));
  await new Promise((r) => pages.listen(p.pages, '127.0.0.1', r));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * 127.0.0.1',
    ],
  });
  const results = [];
  const run = async (name, fn, gw, expectFailure = false) => {
    seen.length = 0;
    const ctx = await browser.newContext();
    const t0 = Date.now();
    let error = null;
    try {
      await fn(ctx);
    } catch (e) {
      error = e;
    } finally {
      await ctx.close();
    }
    // A control run must fail on its browser assertion, not because
    // explain and Chromium disagreed.
    const passed = expectFailure
      ? error instanceof Failure && !error.message.startsWith('corsgate explain says')
      : error === null;
    const detail = expectFailure
      ? error
        ? `failed as it must: ${error.message}`
        : 'passed but must fail'
      : error
        ? error.message
        : '';
    results.push({ name, passed, ms: Date.now() - t0, detail });
    console.log(`${passed ? 'PASS' : 'FAIL'} ${name} (${Date.now() - t0} ms)${detail ? ` — ${detail}` : ''}`);
  };

  const gw = await startGateway(p);
  explainConfig = gw.file;
  try {
    const api = `http://api.example.com:${p.gateway}`;
    for (const [name, fn] of scenarios(p, api, gw)) await run(name, fn, gw);
  } finally {
    gw.stop();
  }

  // The mis-configured run: the public policy lacks X-Request-ID, so the
  // custom-header scenario must now be blocked.
  const brokenPorts = { ...p, gateway: await freePort(), broken: true };
  const broken = await startGateway(brokenPorts);
  explainConfig = broken.file;
  try {
    const api = `http://api.example.com:${brokenPorts.gateway}`;
    const [name, fn] = scenarios(brokenPorts, api, broken).find(([n]) => n.startsWith('preflighted PUT'));
    await run(`mis-configured gateway (allowHeaders without X-Request-ID): ${name}`, fn, broken, true);
  } finally {
    broken.stop();
  }

  await browser.close();
  backend.close();
  pages.close();
  const failed = results.filter((r) => !r.passed);
  console.log(`corsgate explain agreed with Chromium on all ${explainAgreements} fetches it was asked about`);
  console.log(`\n${results.length - failed.length}/${results.length} scenarios passed in ${((Date.now() - started) / 1000).toFixed(1)} s (Chromium ${browser.version()})`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
