// The browser tests' harness: a real `idp serve` (port 0, temporary IDP_HOME), example
// repositories in real git, Debian's chromium through playwright-core, and a small runner
// (cases in order, one daemon per file). No sleeps: every wait polls until a deadline.
// Exit codes: 0 passed, 1 failed (the home is kept and its path printed), 125 skipped.
import { createRequire } from 'node:module';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';

export const k_skip = 125;
export const sourceDir = process.env.IDP_SOURCE_DIR || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
// Relative paths (the documented bench command) are taken from the current directory.
const idpBinary = path.resolve(process.env.IDP_BINARY || path.join(sourceDir, 'build/src/idp'));

export function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(k_skip);
}

// playwright-core from the fixture's install, and Debian's chromium.
export function loadPlaywright() {
  const modules = path.resolve(process.env.IDP_BROWSER_MODULES || path.join(sourceDir, 'build/npm-browser/node_modules'));
  const chromiumPath = process.env.IDP_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(chromiumPath)) skip(`no chromium at ${chromiumPath} (scripts/install-deps.sh installs it)`);
  if (!fs.existsSync(path.join(modules, 'playwright-core'))) skip(`playwright-core is not installed in ${modules} (the browser_setup test installs it)`);
  const require = createRequire(path.join(modules, 'noop.js'));
  return { chromium: require('playwright-core').chromium, chromiumPath };
}

export async function launchBrowser() {
  const { chromium, chromiumPath } = loadPlaywright();
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

// Polls `pred` (sync or async) until it returns a truthy value or `ms` pass; throws `what`.
export async function waitFor(what, pred, ms = 60000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await pred(); } catch (e) { last = undefined; if (Date.now() > deadline) throw new Error(`${what}: ${e.message}`); }
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // the poll interval, not a synchronisation
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function git(cwd, ...args) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' } }).trim();
}

// A git repository with examples/<example> committed on `branch`, plus `files` (path → text).
export function exampleRepo(dir, { example = 'api-service', branch = 'main', files = {} } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(sourceDir, 'examples', example), dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', `example ${example}`);
  if (branch !== 'main') git(dir, 'checkout', '-q', '-b', branch);
  return dir;
}

// A real `idp serve` with its own home; `config` is the server config's YAML text.
export class Daemon {
  constructor(home, config, env = {}) {
    this.home = home;
    this.config = config;
    this.extraEnv = env;
  }

  async start() {
    fs.mkdirSync(this.home, { recursive: true });
    const cfgPath = path.join(this.home, '..', 'server.yml');
    fs.writeFileSync(cfgPath, this.config);
    const out = fs.openSync(path.join(this.home, '..', 'serve.out'), 'a');
    const env = { ...process.env, IDP_LOG_LEVEL: "debug", ...this.extraEnv };
    delete env.IDP_SERVER; delete env.IDP_HOME; delete env.IDP_TOKEN;
    this.proc = spawn(idpBinary, ['serve', '--home', this.home, '--listen', '127.0.0.1:0', '--config', cfgPath],
      { env, stdio: ['ignore', out, out], detached: true });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    let gone = false;
    this.exited.then(() => { gone = true; });
    const info = await waitFor('idp serve to write daemon.json', () => {
      if (gone) throw new Error(`idp serve exited; its output:\n${this.log()}`);
      const j = JSON.parse(fs.readFileSync(path.join(this.home, 'daemon.json'), 'utf8'));
      return j.pid === this.proc.pid && j.api_url ? j : null;
    }, 60000);
    this.url = info.api_url;
    this.routerPort = info.router_port;
    this.adminToken = fs.readFileSync(path.join(this.home, 'admin.token'), 'utf8').trim();
    return this;
  }

  log() {
    try { return fs.readFileSync(path.join(this.home, '..', 'serve.out'), 'utf8'); } catch (_) { return ''; }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    try { process.kill(-this.proc.pid, 'SIGTERM'); } catch (_) { this.proc.kill('SIGTERM'); }
    const timer = setTimeout(() => { try { process.kill(-this.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ } }, 60000);
    await this.exited;
    clearTimeout(timer);
  }

  // The API as the admin (or `token`): {status, body}.
  async api(method, p, body, token = this.adminToken) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(this.url + '/api/v1' + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.json().catch(() => null) };
  }

  async env(name) {
    const r = await this.api('GET', `/environments/${encodeURIComponent(name)}`);
    return r.status === 200 ? r.body : null;
  }

  async waitPhase(name, phases, ms = 120000) {
    const want = [].concat(phases);
    return waitFor(`environment ${name} to be ${want.join(' or ')}`, async () => {
      const e = await this.env(name);
      return e && want.includes(e.phase) ? e : null;
    }, ms).catch(async (e) => { throw new Error(`${e.message}; it is ${JSON.stringify(await this.env(name))}`); });
  }

  // GET through the router with Host <env>.preview.localhost (the app itself).
  // GET through the router. With github.oauth set, previews are behind sign-in by default
  // (previews.protect: signin): a client that is not a browser shows a token.
  viaRouter(envName, p, token = this.adminToken) {
    const headers = { Host: `${envName}.preview.localhost` };
    if (token) headers.Authorization = `Bearer ${token}`;
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.routerPort, path: p, headers }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve({ status: res.statusCode, body: b }));
      });
      req.on('error', reject);
    });
  }
}

// Runs `cases` ({name: async fn}) in order; stops at the first failure. `cleanup` always runs.
export async function run(title, cases, { cleanup, keep } = {}) {
  let failed = false;
  const started = Date.now();
  for (const [name, fn] of Object.entries(cases)) {
    const t0 = Date.now();
    try {
      await fn();
      console.log(`ok   ${title} › ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed = true;
      console.log(`FAIL ${title} › ${name}: ${e.stack || e}`);
      break;
    }
  }
  try { if (cleanup) await cleanup(failed); } catch (e) { console.log(`cleanup: ${e.stack || e}`); failed = true; }
  console.log(`${failed ? 'FAILED' : 'passed'}: ${title} in ${Date.now() - started} ms${failed && keep ? `; kept ${keep}` : ''}`);
  process.exit(failed ? 1 : 0);
}

// The usual `run` options: close the browser, stop the daemon and the GitHub double; on a
// failure keep `tmp` and print the end of the daemon's log, else remove `tmp`.
export function closeAll(tmp, { browser, daemon, gh }) {
  return {
    keep: tmp,
    cleanup: async (failed) => {
      await browser.close();
      await daemon.stop();
      await gh.stop();
      if (failed) console.log(daemon.log().split('\n').slice(-60).join('\n'));
      else fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

// Where screenshots go: IDP_SCREENSHOT_DIR (docs/images to refresh the docs), else the build's.
export function screenshotDir() {
  const d = process.env.IDP_SCREENSHOT_DIR || process.env.IDP_SCREENSHOT_DIR_DEFAULT || path.join(os.tmpdir(), 'idp-screenshots');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

// The server config of the tests: GitHub sign-in through `gh` (a GitHubDouble).
export function oauthConfig(gh) {
  return `github:
  oauth:
    client_id: test-client-id
    client_secret: env:IDP_TEST_GITHUB_SECRET
    allowed_orgs: [acme]
    roles:
      admin: [acme/ops]
      developer: [acme/dev]
      viewer: [acme]
    web_url: ${gh.url}
    api_url: ${gh.url}/api/v3
`;
}
