// End-to-end tests of vigie's status dashboard in a real headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core).
//
// The test starts its own nginx on a free loopback port, serving three health
// pages (a healthy one, a hostile one whose component names are HTML, and one
// the test removes and restores), starts the vigie binary ($VIGIE_BINARY)
// probing them every 300 ms, and looks at what a person would see: states as
// words and colours, reasons, the per-service page, badges, the page's own
// refresh, the page without JavaScript, dark mode, a phone and a wall screen.
// Screenshots go to $VIGIE_TEST_OUTPUT (default tests/browser/output).
//
// Run: VIGIE_BINARY=build/vigie node --test tests/browser/dashboard.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const vigieBinary = process.env.VIGIE_BINARY || path.resolve(here, '../../build/vigie');
const chromiumPath = process.env.VIGIE_CHROMIUM || '/usr/bin/chromium';
const nginxPath = '/usr/sbin/nginx';
const outputDir = process.env.VIGIE_TEST_OUTPUT || path.join(here, 'output');

const HOSTILE_SCRIPT = '<script>window.__xss=1;alert(1)</script>';
const HOSTILE_IMG = '<img src=x onerror="window.__xss=2">';

// --- helpers -----------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A child process whose output goes to a log file; `stop()` ends it and waits.
function startProcess(name, argv, logFile, env = process.env) {
  const log = fs.openSync(logFile, 'w');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log], env });
  fs.closeSync(log);
  let exited = false;
  const done = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = true;
    resolve({ code, signal });
  }));
  child.on('error', () => { exited = true; });
  return {
    name,
    child,
    logFile,
    get exited() { return exited; },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    },
    tail() {
      try { return fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
    },
  };
}

async function waitUntil(what, fn, timeoutMs, proc) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    if (proc && proc.exited) throw new Error(`${proc.name} exited while waiting for ${what}:\n${proc.tail()}`);
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
                  (last ? ` (last error: ${last.message})` : '') + (proc ? `\n${proc.tail()}` : ''));
}

function hexToRgb(hex) {
  const h = hex.trim().replace('#', '');
  const full = h.length === 3 ? [...h].map((c) => c + c).join('') : h;
  const n = parseInt(full, 16);
  return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
}

// Relative luminance (WCAG) of a computed "rgb(r, g, b)" colour, 0 (black) to 1.
function luminance(rgb) {
  const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

// --- fixture: nginx, vigie, chromium -------------------------------------------

const healthy = JSON.stringify({
  status: 'pass',
  version: '2.4.1',
  checks: { 'database:connections': [{ componentId: 'pg', status: 'pass', observedValue: 12 }] },
});
const hostile = JSON.stringify({
  status: 'fail',
  version: '<i>6.6.6</i>',
  output: '<b>bold</b> </pre><script>window.__xss=3</script>',
  checks: {
    [HOSTILE_SCRIPT]: [{ status: 'fail', output: '<b>bold</b>' }],
    [HOSTILE_IMG]: [{ status: 'fail' }],
  },
});

let tmp;
let nginx;
let vigie;
let browser;
let base;
let flipFile;

function flipDown() { fs.rmSync(flipFile, { force: true }); }
function flipUp() { fs.writeFileSync(flipFile, healthy); }

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vigie-browser-'));
  fs.mkdirSync(outputDir, { recursive: true });
  assert.ok(fs.existsSync(vigieBinary), `no vigie binary at ${vigieBinary} (set VIGIE_BINARY)`);

  // nginx: static health pages.
  const www = path.join(tmp, 'www');
  for (const d of ['ok', 'hostile', 'flip', 'logs', 'tmp']) fs.mkdirSync(path.join(www, d), { recursive: true });
  fs.writeFileSync(path.join(www, 'ok/health'), healthy);
  fs.writeFileSync(path.join(www, 'hostile/health'), hostile);
  flipFile = path.join(www, 'flip/health');
  flipUp();
  const nginxPort = await freePort();
  const t = path.join(tmp, 'nginx-tmp');
  fs.mkdirSync(t);
  // master_process off: one process that never changes user (we may be root).
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log warn;
events { worker_connections 256; }
http {
  default_type application/health+json;
  access_log off;
  client_body_temp_path ${t}/body;
  proxy_temp_path ${t}/proxy;
  fastcgi_temp_path ${t}/fastcgi;
  uwsgi_temp_path ${t}/uwsgi;
  scgi_temp_path ${t}/scgi;
  server {
    listen 127.0.0.1:${nginxPort};
    root ${www};
  }
}
`);
  nginx = startProcess('nginx', [nginxPath, '-p', tmp, '-c', path.join(tmp, 'nginx.conf'), '-e',
                                 path.join(tmp, 'nginx-error.log')], path.join(tmp, 'nginx.log'));
  const target = `http://127.0.0.1:${nginxPort}`;
  await waitUntil('nginx', async () => (await fetch(`${target}/ok/health`)).ok, 10000, nginx);

  // vigie: four services in two groups, one cluster.
  const vigiePort = await freePort();
  base = `http://127.0.0.1:${vigiePort}`;
  const config = `listen: "127.0.0.1:${vigiePort}"
location: "browser-test"
defaults:
  interval: 300ms
  timeout: 250ms
  failure_threshold: 1
groups:
  - name: web
    description: "Public web services"
  - name: edge
    description: "Edge cases"
services:
  - name: portal
    group: web
    description: "Observation portal"
    checks:
      - name: health
        http:
          url: "${target}/ok/health"
          conditions:
            - {json: /status, equals: pass}
  - name: flip
    group: web
    description: "Comes and goes"
    checks:
      - name: health
        http:
          url: "${target}/flip/health"
          expect_status: [200]
          conditions:
            - {json: /status, equals: pass}
  - name: archive
    group: edge
    description: "A non-critical mirror is missing"
    checks:
      - name: health
        http: {url: "${target}/ok/health"}
      - name: mirror
        critical: false
        http: {url: "${target}/missing/health"}
  - name: evil
    group: edge
    description: "Its health page is hostile HTML"
    checks:
      - name: health
        http: {url: "${target}/hostile/health"}
clusters:
  - name: web-cluster
    services: [portal, flip]
`;
  const configFile = path.join(tmp, 'vigie.yaml');
  fs.writeFileSync(configFile, config);
  vigie = startProcess('vigie', [vigieBinary, '--config', configFile], path.join(tmp, 'vigie.log'));
  await waitUntil('vigie /readyz', async () => (await fetch(`${base}/readyz`)).ok, 15000, vigie);
  // Every service has a result (none unknown) before the tests look.
  await waitUntil('first results', async () => {
    const html = await (await fetch(`${base}/?fragment=1`)).text();
    return !html.includes('data-state="unknown"') && html.includes('data-service="evil" data-state="down"');
  }, 10000, vigie);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (vigie) await vigie.stop();
  if (nginx) await nginx.stop();
  if (tmp && !process.env.VIGIE_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

// A fresh page that records dialogs, console messages and page errors.
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  const events = { dialogs: [], console: [], errors: [] };
  page.on('dialog', (d) => { events.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('console', (m) => {
    // Every console message counts, a missing favicon's 404 too (vigie serves one).
    events.console.push(`${m.type()}: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => events.errors.push(e.message));
  return { context, page, events };
}

const card = (page, service) => page.locator(`li.svc[data-service="${service}"]`);

// Reloads `url` until the card of `service` says `state` (vigie probes every 300 ms).
async function gotoUntilState(page, url, service, state, timeoutMs = 5000) {
  await waitUntil(`${service} ${state} on ${url}`, async () => {
    await page.goto(url);
    return (await card(page, service).getAttribute('data-state')) === state;
  }, timeoutMs, vigie);
}

// --- tests -----------------------------------------------------------------------

describe('vigie dashboard in Chromium', () => {
  test('a failing target turns red with the word and the reason; the page refreshes itself in place; recovery turns it green', async () => {
    // Short viewport so the page scrolls: the refresh must keep the position.
    const { context, page, events } = await newPage({ viewport: { width: 900, height: 420 } });
    try {
      flipUp();
      await gotoUntilState(page, `${base}/`, 'flip', 'up');
      const flip = card(page, 'flip');
      const flipState = flip.locator('.head .state');
      assert.equal((await flipState.textContent()).trim(), 'up');
      const vars = await page.evaluate(() => {
        const s = getComputedStyle(document.documentElement);
        return { up: s.getPropertyValue('--up'), down: s.getPropertyValue('--down') };
      });
      assert.equal(await flipState.evaluate((e) => getComputedStyle(e).color), hexToRgb(vars.up));
      assert.notEqual(hexToRgb(vars.up), hexToRgb(vars.down));

      const maxScroll = await page.evaluate(() => document.documentElement.scrollHeight - innerHeight);
      assert.ok(maxScroll >= 100, `page should scroll at 900x420, max scroll ${maxScroll}`);
      await page.evaluate(() => { window.scrollTo(0, 100); window.__sameDocument = true; });
      const scrollBefore = await page.evaluate(() => window.scrollY);
      assert.equal(scrollBefore, 100);

      // The target goes away: nginx answers 404. No reload from here: the page's
      // own refresh (every 10 s) must replace <main>.
      flipDown();
      const t0 = Date.now();
      await page.waitForSelector('li.svc[data-service="flip"][data-state="down"]', { timeout: 15000 });
      const refreshMs = Date.now() - t0;
      assert.equal(await page.evaluate(() => window.__sameDocument), true, 'refreshed without navigating');
      assert.equal(await page.evaluate(() => window.scrollY), scrollBefore, 'scroll position kept');
      assert.equal(await page.evaluate(() => document.documentElement.hasAttribute('data-stale')), false);

      assert.equal((await flipState.textContent()).trim(), 'down');
      assert.equal(await flipState.evaluate((e) => getComputedStyle(e).color), hexToRgb(vars.down));
      const why = flip.locator('.why');
      assert.equal((await why.locator('strong').textContent()).trim(), 'http_status');
      assert.match(await why.textContent(), /got 404, expected 200/);
      assert.ok(await why.isVisible());
      // evil and flip, in <main>'s summary and in the header's chips, which the
      // refresh swaps too.
      assert.match(await page.locator('main p.summary').textContent(), /\b2 down\b/);
      assert.equal((await page.locator('header nav .chip.s-down').textContent()).trim(), '2 down');
      console.log(`# in-page refresh replaced <main> ${refreshMs} ms after the target failed`);

      // Recovery.
      flipUp();
      await gotoUntilState(page, `${base}/`, 'flip', 'up');
      assert.equal((await flipState.textContent()).trim(), 'up');
      assert.equal(await flipState.evaluate((e) => getComputedStyle(e).color), hexToRgb(vars.up));
      assert.equal(await flip.locator('.why').count(), 0);
      assert.deepEqual(events.errors, []);
      assert.deepEqual(events.console, []);
    } finally {
      flipUp();
      await context.close();
    }
  });

  test('the per-service page shows which condition failed, then that it passes', async () => {
    const { context, page } = await newPage();
    try {
      flipDown();
      await waitUntil('flip down', async () => {
        await page.goto(`${base}/services/flip`);
        return (await page.locator('h2 .state').textContent()).trim() === 'down';
      }, 5000, vigie);
      const section = page.locator('section.check#check-health');
      assert.match(await section.textContent(), /Last result .*: fail \(http_status\).*HTTP 404/s);
      const failed = section.locator('li.cond-fail');
      assert.equal(await failed.count(), 1);
      assert.match(await failed.textContent(), /^FAILED: .*\/status/);
      assert.ok(await failed.isVisible());
      const vars = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--down'));
      assert.equal(await failed.evaluate((e) => getComputedStyle(e).color), hexToRgb(vars));
      // The badge says so too.
      const badge = await (await fetch(`${base}/badge/flip.svg`)).text();
      assert.match(badge, /<title>flip: down<\/title>/);

      flipUp();
      await waitUntil('flip up', async () => {
        await page.goto(`${base}/services/flip`);
        return (await page.locator('h2 .state').textContent()).trim() === 'up';
      }, 5000, vigie);
      assert.equal(await page.locator('li.cond-fail').count(), 0);
      assert.match(await page.locator('li.cond-ok').first().textContent(), /^passed: .*\/status/);

      await page.goto(`${base}/services/portal`);
      assert.equal((await page.locator('h2 .state').textContent()).trim(), 'up');
      assert.match(await page.locator('li.cond-ok').textContent(), /^passed: .*\/status.*pass/);
      assert.match(await page.locator('main').textContent(), /version 2\.4\.1/);
      assert.match(await page.locator('main').textContent(), /database:connections/);
      // The badge image on the page renders under the page's CSP.
      const img = page.locator('img[src="/badge/portal.svg"]');
      await waitUntil('badge image', () => img.evaluate((e) => e.complete && e.naturalWidth > 0), 3000);
    } finally {
      flipUp();
      await context.close();
    }
  });

  test('a hostile health page cannot run script: its HTML is shown as text', async () => {
    const { context, page, events } = await newPage();
    try {
      for (const url of [`${base}/`, `${base}/services/evil`, `${base}/groups/edge`]) {
        const res = await page.goto(url);
        assert.equal(res.status(), 200, url);
        const csp = res.headers()['content-security-policy'] || '';
        assert.match(csp, /default-src 'none'/, url);
        assert.match(csp, /script-src 'self'(;|$)/, url);
        assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, url);
        assert.equal(res.headers()['x-content-type-options'], 'nosniff', url);

        const text = await page.locator('main').textContent();
        assert.ok(text.includes(HOSTILE_SCRIPT), `${url}: the <script> name is shown as text`);
        assert.ok(text.includes(HOSTILE_IMG), `${url}: the <img onerror> name is shown as text`);
        assert.ok(await page.getByText(HOSTILE_SCRIPT).first().isVisible(), url);
        // Nothing was parsed as markup: the only script is the dashboard's own.
        const dom = await page.evaluate(() => ({
          xss: window.__xss,
          scripts: [...document.scripts].map((s) => s.getAttribute('src')),
          imgX: document.querySelectorAll('img[src="x"]').length,
          bold: document.querySelectorAll('main b, main i').length,
        }));
        assert.deepEqual(dom, { xss: undefined, scripts: ['/assets/dashboard.js'], imgX: 0, bold: 0 }, url);
      }
      const text = await page.locator('main').textContent();
      assert.ok(text.includes('<b>bold</b>'), 'the output is shown as text');
      assert.ok(text.includes('<i>6.6.6</i>'), 'the version is shown as text');
      // The fragment the page's refresh swaps in is escaped too.
      await page.goto(`${base}/`);
      await page.evaluate(async () => {
        const html = await (await fetch('/?fragment=1')).text();
        document.getElementById('main').innerHTML = html;
      });
      await sleep(200);
      assert.equal(await page.evaluate(() => window.__xss), undefined);
      assert.deepEqual(events.dialogs, [], 'no dialog opened');
      assert.deepEqual(events.console, [], 'no console message (not even a CSP refusal)');
      assert.deepEqual(events.errors, []);
    } finally {
      await context.close();
    }
  });

  test('badges are valid SVG with the state and the uptime', async () => {
    const { context, page } = await newPage();
    try {
      await page.goto(`${base}/`);
      const get = async (p) => {
        const r = await fetch(`${base}${p}`);
        return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
      };
      // Parsed by the browser's XML parser, as a strict consumer would.
      const parse = (svg) => page.evaluate((s) => {
        const doc = new DOMParser().parseFromString(s, 'image/svg+xml');
        return {
          error: doc.getElementsByTagName('parsererror').length > 0,
          root: doc.documentElement.localName,
          ns: doc.documentElement.namespaceURI,
          title: doc.querySelector('title')?.textContent,
          width: Number(doc.documentElement.getAttribute('width')),
        };
      }, svg);

      const state = await get('/badge/portal.svg');
      assert.equal(state.status, 200);
      assert.match(state.type, /^image\/svg\+xml/);
      const s = await parse(state.body);
      assert.deepEqual({ ...s, width: s.width > 40 }, {
        error: false, root: 'svg', ns: 'http://www.w3.org/2000/svg', title: 'portal: up', width: true,
      });

      const evil = await parse((await get('/badge/evil.svg')).body);
      assert.equal(evil.title, 'evil: down');

      const uptime = await get('/badge/portal/uptime/24h.svg');
      assert.equal(uptime.status, 200);
      assert.match(uptime.type, /^image\/svg\+xml/);
      const u = await parse(uptime.body);
      assert.equal(u.error, false);
      assert.match(u.title, /^uptime 24h: (\d+(\.\d+)?%|no data)$/);
      const evilUptime = await parse((await get('/badge/evil/uptime/24h.svg')).body);
      assert.match(evilUptime.title, /^uptime 24h: (0(\.0)?%|no data)$/);

      const missing = await get('/badge/nobody.svg');
      assert.equal(missing.status, 404);
      assert.equal((await parse(missing.body)).title, 'nobody: not found');
      assert.equal((await get('/badge/portal/uptime/2h.svg')).status, 404);

      // And the browser draws it.
      await page.goto(`${base}/badge/portal.svg`);
      const box = await page.locator('svg').boundingBox();
      assert.ok(box && box.width > 40 && box.height === 20, JSON.stringify(box));
    } finally {
      await context.close();
    }
  });

  test('works with JavaScript disabled', async () => {
    const { context, page } = await newPage({ javaScriptEnabled: false });
    try {
      await page.goto(`${base}/`);
      const states = {};
      for (const li of await page.locator('li.svc').all()) {
        states[await li.getAttribute('data-service')] = (await li.locator('.head .state').textContent()).trim();
      }
      assert.deepEqual(states, { portal: 'up', flip: 'up', archive: 'degraded', evil: 'down' });
      assert.ok(await card(page, 'evil').locator('.why').isVisible());
      assert.equal(await page.locator('noscript meta[http-equiv="refresh"]').count() +
                   await page.locator('meta[http-equiv="refresh"]').count() > 0, true);
      assert.equal(await page.locator('meta[http-equiv="refresh"]').first().getAttribute('content'), '30');
      await page.getByRole('link', { name: 'portal' }).first().click();
      await page.waitForURL(`${base}/services/portal`);
      assert.equal((await page.locator('h2 .state').textContent()).trim(), 'up');
      assert.match(await page.locator('li.cond-ok').textContent(), /^passed:/);
    } finally {
      await context.close();
    }
  });

  test('dark mode follows the system; fits a phone; scales up on a wall screen', async () => {
    const bg = async (scheme) => {
      const { context, page } = await newPage({ colorScheme: scheme });
      try {
        await page.goto(`${base}/`);
        return await page.evaluate(() => ({
          bg: getComputedStyle(document.body).backgroundColor,
          fg: getComputedStyle(document.body).color,
        }));
      } finally {
        await context.close();
      }
    };
    const light = await bg('light');
    const dark = await bg('dark');
    assert.ok(luminance(light.bg) > 0.9, `light background ${light.bg}`);
    assert.ok(luminance(light.fg) < 0.1, `light text ${light.fg}`);
    assert.ok(luminance(dark.bg) < 0.05, `dark background ${dark.bg}`);
    assert.ok(luminance(dark.fg) > 0.6, `dark text ${dark.fg}`);

    const phone = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
                                  deviceScaleFactor: 2 });
    try {
      for (const p of ['/', '/services/portal', '/services/evil', '/services/archive', '/clusters/web-cluster']) {
        await phone.page.goto(`${base}${p}`);
        const m = await phone.page.evaluate(() => ({
          scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
          font: parseFloat(getComputedStyle(document.body).fontSize),
        }));
        assert.ok(m.scroll <= m.inner, `${p}: no sideways scrolling on a phone (${m.scroll} > ${m.inner})`);
        assert.ok(m.font >= 14, `${p}: body text ${m.font}px`);
      }
      await phone.page.goto(`${base}/`);
      const cols = await phone.page.evaluate(() =>
        getComputedStyle(document.querySelector('ul.services')).gridTemplateColumns.split(' ').length);
      assert.equal(cols, 1, 'one column on a phone');
    } finally {
      await phone.context.close();
    }

    const wall = await newPage({ viewport: { width: 2560, height: 1440 } });
    try {
      await wall.page.goto(`${base}/`);
      const m = await wall.page.evaluate(() => ({
        font: parseFloat(getComputedStyle(document.body).fontSize),
        cols: getComputedStyle(document.querySelector('ul.services')).gridTemplateColumns.split(' ').length,
        scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
      }));
      assert.ok(m.font >= 20, `wall screen text ${m.font}px`);
      assert.ok(m.cols >= 3, `wall screen columns ${m.cols}`);
      assert.ok(m.scroll <= m.inner);
    } finally {
      await wall.context.close();
    }
  });

  test('screenshots of the main page and a service page, light and dark', async () => {
    const shots = [];
    for (const scheme of ['light', 'dark']) {
      const { context, page } = await newPage({ colorScheme: scheme });
      try {
        for (const [name, p] of [['dashboard', '/'], ['service', '/services/portal']]) {
          await page.goto(`${base}${p}`);
          await page.waitForLoadState('load');
          const file = path.join(outputDir, `${name}${scheme === 'dark' ? '-dark' : ''}.png`);
          await page.screenshot({ path: file, fullPage: true });
          shots.push(file);
        }
      } finally {
        await context.close();
      }
    }
    for (const f of shots) {
      const b = fs.readFileSync(f);
      assert.equal(b.subarray(1, 4).toString(), 'PNG', f);
      assert.ok(b.length > 20000, `${f} is ${b.length} bytes`);
    }
    console.log(`# screenshots in ${outputDir}`);
  });
});
