// bench/dashboard (issue 13): time until the dashboard's environments page has rendered
// N environments (200) and the bytes transferred for it, in headless Chromium, beside the
// same page of a server with no environment, measured in the same run.
// Goal: under 300 ms of extra time and under 150 KB of extra bytes.
//
//   node bench/dashboard/dashboard.mjs [--envs 200] [--runs 5]
//   (IDP_BINARY=<build>/src/idp, IDP_BROWSER_MODULES=<build>/npm-browser/node_modules;
//    tests/browser/setup_browser.sh <build>/npm-browser installs playwright-core)
//
// Two real `idp serve` (port 0, temporary homes, the harness of tests/browser): one empty,
// one with N environments of a static-site repository without a build step (the cheapest
// deployment: Caddy's file server, no process), all settled (ready or failed) before
// measuring, so no event refreshes the list while it is measured. Each run is a new
// browser context (cold cache) signed in with the admin token (an admin sees every
// environment); the runs alternate empty / full / full with the browser asking for gzip
// only (a diagnostic: the same as its own offer since the server stopped answering br),
// after one warm-up of empty and full.
// Time: from navigation start (performance.timeOrigin) to the frame after the rows are in
// the DOM (a MutationObserver notes the moment, then requestAnimationFrame + a task).
// Bytes: encodedDataLength (headers + body as received) of every response, from the
// DevTools protocol; the event stream, which never finishes, counts with what it received.
// Exit 125 (skipped) without chromium or playwright-core.
import path from 'node:path';
import fs from 'node:fs';
import http from 'node:http';
import { Daemon, exampleRepo, launchBrowser, loadPlaywright, tempDir, waitFor } from '../../tests/browser/lib/harness.mjs';

const args = process.argv.slice(2);
function flag(name, def) {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`${name}: expected a positive whole number, got ${JSON.stringify(args[i + 1])}`);
    process.exit(2);
  }
  return v;
}
const k_envs = flag('--envs', 200);
const k_runs = flag('--runs', 5);
const k_goal_ms = 300;
const k_goal_bytes = 150 * 1024;

loadPlaywright(); // skips (125) before anything starts when the browser is missing
const tmp = tempDir('idp-bench-dashboard-');
const daemons = [];

function median(v) {
  const s = v.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
const kb = (b) => (b / 1024).toFixed(1) + ' KB';
const ms = (t) => t.toFixed(0) + ' ms';

// Creates `count` environments with at most `parallel` requests in flight.
async function createEnvs(daemon, repo, count, parallel = 8) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const name = `env-${String(i).padStart(3, '0')}`;
      const r = await daemon.api('POST', '/environments', { repo, branch: 'main', name, ttl: '2h' });
      if (r.status !== 202) throw new Error(`create ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

// Waits until the list has `count` environments and none is still changing.
async function settled(daemon, count) {
  const busy = (e) => !['ready', 'failed'].includes(e.phase);
  const list = await waitFor(`${count} environments listed and settled`, async () => {
    const r = await daemon.api('GET', '/environments');
    const envs = r.status === 200 ? r.body.environments : [];
    return envs.length === count && !envs.some(busy) ? envs : null;
  }, 15 * 60 * 1000);
  const phases = {};
  for (const e of list) phases[e.phase] = (phases[e.phase] || 0) + 1;
  return phases;
}

// The API alone, outside the browser: GET /api/v1/environments with `encoding` as the
// Accept-Encoding (what chromium sends is "gzip, deflate, br, zstd"; cpp-httplib would pick
// br at quality 11, so the server drops br from the offer and answers gzip, or the body as
// is when br was all the client offered): median milliseconds to the last byte, and the
// bytes of the body as sent.
function apiList(daemon, encoding, runs) {
  const once = () => new Promise((resolve, reject) => {
    const t = performance.now();
    const headers = { Authorization: `Bearer ${daemon.adminToken}` };
    if (encoding) headers['Accept-Encoding'] = encoding;
    http.get(daemon.url + '/api/v1/environments', { headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => { bytes += c.length; });
      res.on('end', () => (res.statusCode === 200 ? resolve({ ms: performance.now() - t, bytes, enc: res.headers['content-encoding'] || 'identity' })
        : reject(new Error(`GET /api/v1/environments: ${res.statusCode}`))));
    }).on('error', reject);
  });
  return (async () => {
    const v = [];
    for (let i = 0; i < runs; i++) v.push(await once());
    return { ms: median(v.map((x) => x.ms)), bytes: v[0].bytes, enc: v[0].enc };
  })();
}

// Runs in the page before its scripts: notes when `rows` rows (or, for 0, the empty-list
// message) are in the DOM, and when the next frame after that has been produced.
function observeRendered(rows) {
  const done = () => (rows > 0 ? document.querySelectorAll('#envs tbody tr').length >= rows : !!document.getElementById('empty'));
  const mark = () => {
    if (window.__bench || !done()) return;
    window.__bench = { dom: performance.now() };
    requestAnimationFrame(() => setTimeout(() => { window.__bench.frame = performance.now(); }, 0));
  };
  new MutationObserver(mark).observe(document, { childList: true, subtree: true });
}

// One cold page load of the environments list of `daemon`, signed in with the admin token.
// `encoding`: an Accept-Encoding for every request instead of chromium's own.
async function measure(browser, daemon, rows, encoding) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 },
    extraHTTPHeaders: encoding ? { 'Accept-Encoding': encoding } : {} });
  try {
    const login = await ctx.request.post(daemon.url + '/login', { data: { token: daemon.adminToken } });
    if (!login.ok()) throw new Error(`sign in with the admin token: ${login.status()} ${await login.text()}`);
    const page = await ctx.newPage();
    await page.addInitScript(observeRendered, rows);
    const cdp = await ctx.newCDPSession(page);
    const finished = new Map(); // requestId → encodedDataLength once finished
    const received = new Map(); // requestId → bytes received so far (for the event stream)
    const urls = new Map();
    cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
    let listEncoding = '?';
    cdp.on('Network.responseReceived', (e) => {
      if (new URL(e.response.url).pathname !== '/api/v1/environments') return;
      const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
      listEncoding = h['content-encoding'] || 'identity';
    });
    cdp.on('Network.dataReceived', (e) => received.set(e.requestId, (received.get(e.requestId) || 0) + e.encodedDataLength));
    cdp.on('Network.loadingFinished', (e) => finished.set(e.requestId, e.encodedDataLength));
    await cdp.send('Network.enable');
    await page.goto(daemon.url + '/');
    await page.waitForFunction(() => window.__bench && window.__bench.frame !== undefined, null, { timeout: 60000 });
    const t = await page.evaluate(() => {
      const list = performance.getEntriesByType('resource').find((r) => new URL(r.name).pathname === '/api/v1/environments');
      return { ...window.__bench, listEnd: list ? list.responseEnd : NaN, listWait: list ? list.responseStart - list.requestStart : NaN,
        listBody: list ? list.decodedBodySize : NaN, rows: document.querySelectorAll('#envs tbody tr').length };
    });
    if (t.rows !== rows) throw new Error(`expected ${rows} rows, the page shows ${t.rows}`);
    const perUrl = {};
    let bytes = 0;
    for (const [id, url] of urls) {
      const b = finished.has(id) ? finished.get(id) : (received.get(id) || 0);
      const p = new URL(url).pathname;
      perUrl[p] = (perUrl[p] || 0) + b;
      bytes += b;
    }
    return { ms: t.frame, dom: t.dom, js: t.dom - t.listEnd, paint: t.frame - t.dom, listEnd: t.listEnd, listWait: t.listWait, listBody: t.listBody, listEncoding, bytes, perUrl };
  } finally {
    await ctx.close();
  }
}

let failed = false;
try {
  const config = ''; // the defaults: token sign-in only
  const empty = await new Daemon(path.join(tmp, 'empty', 'home'), config).start();
  daemons.push(empty);
  const full = await new Daemon(path.join(tmp, 'full', 'home'), config).start();
  daemons.push(full);
  const repo = exampleRepo(path.join(tmp, 'site'), {
    example: 'static-site',
    files: { '.idp/config.yml': 'template: static-site\nstatic:\n  dir: src\n' }, // no build: src/ is served as is
  });
  const t0 = Date.now();
  await createEnvs(full, repo, k_envs);
  const phases = await settled(full, k_envs);
  console.log(`${k_envs} static-site environments created and settled in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(phases)}`);

  const browser = await launchBrowser();
  await measure(browser, empty, 0); // warm-up: chromium's first page, the daemons' first requests
  await measure(browser, full, k_envs);
  const base = [], load = [], loadGzip = [];
  for (let i = 0; i < k_runs; i++) {
    base.push(await measure(browser, empty, 0));
    load.push(await measure(browser, full, k_envs));
    loadGzip.push(await measure(browser, full, k_envs, 'gzip, deflate'));
  }
  await browser.close();
  const server = [];
  for (const enc of ['br', 'gzip', '']) server.push([enc || 'none', await apiList(empty, enc, k_runs), await apiList(full, enc, k_runs)]);

  const m = (v, k) => median(v.map((x) => x[k]));
  const row = (label, k, note = '') => console.log(`    ${label.padEnd(32)} empty: ${ms(m(base, k)).padStart(7)}   ${k_envs} envs: ${ms(m(load, k)).padStart(7)}${note ? '   ' + note : ''}`);
  const dt = m(load, 'ms') - m(base, 'ms');
  const db = m(load, 'bytes') - m(base, 'bytes');
  console.log(`environments page, median of ${k_runs} cold loads each (headless chromium, 1280x800):`);
  console.log(`  time to rendered list  empty: ${ms(m(base, 'ms'))}   ${k_envs} envs: ${ms(m(load, 'ms'))}   extra: ${ms(dt)} (x${(m(load, 'ms') / m(base, 'ms')).toFixed(2)})   goal: < ${k_goal_ms} ms extra`);
  row('navigation → rows in the DOM', 'dom');
  row('navigation → list received', 'listEnd');
  row('list request → first byte', 'listWait', '(the server)');
  row('list received → rows in the DOM', 'js', "(the dashboard's JS)");
  row('rows in the DOM → next frame', 'paint', '(style, layout, paint)');
  const g = (k) => median(loadGzip.map((x) => x[k]));
  console.log(`    the same ${k_envs} envs with the browser asking for gzip, not br (a diagnostic): ${ms(g('ms'))} (extra ${ms(g('ms') - m(base, 'ms'))}; list first byte ${ms(g('listWait'))}, JS ${ms(g('js'))}, style/layout/paint ${ms(g('paint'))}), ${kb(g('bytes'))} (extra ${kb(g('bytes') - m(base, 'bytes'))}); the list came as ${loadGzip[0].listEncoding}, chromium's own request got ${load[0].listEncoding}`);
  console.log(`  bytes transferred      empty: ${kb(m(base, 'bytes'))}   ${k_envs} envs: ${kb(m(load, 'bytes'))}   extra: ${kb(db)} (x${(m(load, 'bytes') / m(base, 'bytes')).toFixed(2)})   goal: < ${kb(k_goal_bytes)} extra`);
  console.log(`    (the list's JSON: ${kb(m(base, 'listBody'))} vs ${kb(m(load, 'listBody'))} decoded; responses are compressed)`);
  const last = load[load.length - 1].perUrl, lastBase = base[base.length - 1].perUrl;
  for (const p of Object.keys(last).sort()) console.log(`    ${p.padEnd(24)} empty: ${kb(lastBase[p] || 0).padStart(9)}   ${k_envs} envs: ${kb(last[p]).padStart(9)}`);
  console.log(`  GET /api/v1/environments outside the browser (node, median of ${k_runs}), by Accept-Encoding:`);
  for (const [enc, e, f] of server) console.log(`    ${enc.padEnd(5)} empty: ${ms(e.ms)} ${kb(e.bytes)}   ${k_envs} envs: ${ms(f.ms)} ${kb(f.bytes)} (${f.enc})`);
  console.log(`  all runs (ms)  empty: ${base.map((x) => x.ms.toFixed(0)).join(' ')}   ${k_envs} envs: ${load.map((x) => x.ms.toFixed(0)).join(' ')}`);
  const verdict = (ok, what) => (ok ? `met (${what})` : `NOT met (${what})`);
  console.log(`goal: time ${verdict(dt < k_goal_ms, `${ms(dt)} extra vs ${k_goal_ms} ms`)}; bytes ${verdict(db < k_goal_bytes, `${kb(db)} extra vs ${kb(k_goal_bytes)}`)}`);
  console.log(`reproduce: IDP_BINARY=${process.env.IDP_BINARY || 'build/src/idp'} IDP_BROWSER_MODULES=${process.env.IDP_BROWSER_MODULES || 'build/npm-browser/node_modules'} node bench/dashboard/dashboard.mjs --envs ${k_envs} --runs ${k_runs}`);
} catch (e) {
  failed = true;
  console.log(`bench_dashboard failed: ${e.stack || e}`);
  for (const d of daemons) console.log(`--- ${d.home} log tail:\n${d.log().split('\n').slice(-30).join('\n')}`);
} finally {
  for (const d of daemons) await d.stop().catch(() => {});
  if (failed) console.log(`kept ${tmp}`); else fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
