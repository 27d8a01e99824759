// A local GitHub for the dashboard's sign-in tests: the OAuth web flow (authorize redirect,
// token exchange with PKCE S256 checked) and the /user, /user/orgs, /user/teams endpoints,
// plus /evil: a page of another site that posts a form to the dashboard (the CSRF case).
// It answers at http://localhost:<port> while the dashboard is http://127.0.0.1:<port>:
// two different sites, as GitHub and a real server are, so SameSite rules apply for real.
import http from 'node:http';
import crypto from 'node:crypto';

export const k_client_id = 'test-client-id';
export const k_client_secret = 'test-client-secret-0123456789';

function base64url(buf) {
  return buf.toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

export class GitHubDouble {
  // users: {login: {orgs: ['acme'], teams: ['acme/dev']}}
  constructor(users) {
    this.users = users;
    this.nextUser = null;      // who "signs in" at the next authorize
    this.codes = new Map();    // code → {login, challenge, redirect_uri}
    this.tokens = new Map();   // access token → login
    this.requests = [];        // "METHOD path" of every request
    this.evilTarget = '';      // where /evil posts its form
    this.evilBody = '';
  }

  async start() {
    this.server = http.createServer((req, res) => this.handle(req, res).catch((e) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(e));
    }));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // Both loopback families: chromium and curl may try ::1 for "localhost" first.
      this.server.listen({ port: 0, host: '::', ipv6Only: false }, resolve);
    }).catch(() => new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve)));
    this.port = this.server.address().port;
    this.url = `http://localhost:${this.port}`;
    return this;
  }

  stop() { return new Promise((resolve) => { this.server.closeAllConnections?.(); this.server.close(resolve); }); }

  async body(req) {
    let b = '';
    for await (const c of req) b += c;
    return b;
  }

  json(res, status, value) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(value));
  }

  async handle(req, res) {
    const url = new URL(req.url, this.url);
    this.requests.push(`${req.method} ${url.pathname}`);
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== k_client_id) return this.json(res, 400, { error: 'unknown client_id' });
      if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        return this.json(res, 400, { error: 'PKCE S256 required by this double' });
      }
      if (!q.get('state')) return this.json(res, 400, { error: 'state required by this double' });
      const login = this.nextUser;
      const code = crypto.randomBytes(10).toString('hex');
      this.codes.set(code, { login, challenge: q.get('code_challenge'), redirect_uri: q.get('redirect_uri') });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      // As on GitHub, the user approves on GitHub's own page: the way back is then a
      // navigation started by another site, which a SameSite=Strict cookie would not follow.
      const esc = (t) => t.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(`<!doctype html><title>Authorize</title><p>Sign in to mini-idp as ${esc(String(login))}?</p>` +
        `<a id="authorize" href="${esc(back.href)}">Authorize</a>`);
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      const form = new URLSearchParams(await this.body(req));
      const c = this.codes.get(form.get('code'));
      this.codes.delete(form.get('code')); // a code is good once
      const bad = (why) => this.json(res, 200, { error: 'bad_verification_code', error_description: why });
      if (form.get('client_id') !== k_client_id || form.get('client_secret') !== k_client_secret) return bad('wrong client credentials');
      if (!c) return bad('The code passed is incorrect or expired.');
      if (form.get('redirect_uri') !== c.redirect_uri) return bad('redirect_uri mismatch');
      const verifier = form.get('code_verifier') || '';
      if (base64url(crypto.createHash('sha256').update(verifier).digest()) !== c.challenge) return bad('PKCE verification failed');
      const token = 'gho_' + crypto.randomBytes(16).toString('hex');
      this.tokens.set(token, c.login);
      return this.json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:org' });
    }
    if (req.method === 'GET' && url.pathname.startsWith('/api/v3/user')) {
      const login = this.tokens.get((req.headers.authorization || '').replace(/^Bearer /, ''));
      if (!login) return this.json(res, 401, { message: 'Bad credentials' });
      const u = this.users[login];
      if (url.pathname === '/api/v3/user') return this.json(res, 200, { login, id: 1, type: 'User' });
      if (url.pathname === '/api/v3/user/orgs') return this.json(res, 200, u.orgs.map((o) => ({ login: o })));
      if (url.pathname === '/api/v3/user/teams') {
        return this.json(res, 200, u.teams.map((t) => ({ slug: t.split('/')[1], organization: { login: t.split('/')[0] } })));
      }
    }
    if (req.method === 'GET' && url.pathname === '/evil') {
      // A page on another site that submits a form to the dashboard with the browser's cookies.
      res.writeHead(200, { 'Content-Type': 'text/html' });
      const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
      return res.end(`<!doctype html><form id="f" method="POST" enctype="text/plain" action="${esc(this.evilTarget)}">` +
        `<input type="hidden" name="${esc(this.evilBody)}" value=""></form><script>document.getElementById('f').submit()</script>`);
    }
    this.json(res, 404, { message: 'Not Found' });
  }
}
