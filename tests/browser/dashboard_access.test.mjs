// Who may do what on the dashboard (issue 13, must-show 2): a viewer sees no action and a
// forged action from its session is 403; a cross-site form post that rides on a signed-in
// browser is refused; a user outside the allowed organisations is refused with the reason;
// a forged OAuth state is refused; after sign-out the pages ask to sign in again.
import path from 'node:path';
import { GitHubDouble, k_client_secret } from './lib/github_double.mjs';
import { Daemon, assert, closeAll, exampleRepo, launchBrowser, loadPlaywright, oauthConfig, run, tempDir } from './lib/harness.mjs';

loadPlaywright();
const tmp = tempDir('idp-browser-access-');
const gh = await new GitHubDouble({
  alice: { orgs: ['acme'], teams: ['acme/dev'] },
  victor: { orgs: ['acme'], teams: [] },
  mallory: { orgs: ['evilcorp'], teams: ['evilcorp/dev'] },
}).start();
const daemon = await new Daemon(path.join(tmp, 'home'), oauthConfig(gh), { IDP_TEST_GITHUB_SECRET: k_client_secret }).start();
const browser = await launchBrowser();

async function signIn(login) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  gh.nextUser = login;
  await page.goto(daemon.url + '/login');
  await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
  await page.locator('#authorize').click(); // on GitHub (the double)
  return page;
}

let viewer;
await run('dashboard (access)', {
  'an environment of alice is deployed': async () => {
    const repo = exampleRepo(path.join(tmp, 'app'));
    const r = await daemon.api('POST', '/environments', { repo, branch: 'main', name: 'shop', owner: 'alice', ttl: '2h' });
    assert(r.status === 202, `create: ${r.status} ${JSON.stringify(r.body)}`);
    await daemon.waitPhase('shop', 'ready');
  },

  'a viewer sees no action buttons': async () => {
    viewer = await signIn('victor');
    await viewer.waitForURL(daemon.url + '/');
    await viewer.locator('#who').filter({ hasText: 'victor · viewer' }).waitFor();
    assert(!(await viewer.locator('#mine').isChecked()), 'a viewer sees every environment by default');
    await viewer.locator('tr[data-env="shop"] a.env-link').click();
    await viewer.locator('#expires').waitFor();
    await viewer.locator('#logs-h').waitFor();
    for (const id of ['#extend', '#redeploy', '#destroy', '#unlock', '#ttl']) {
      assert(await viewer.locator(id).count() === 0, `a viewer has no ${id}`);
    }
    assert(await viewer.getByRole('button').filter({ hasNotText: 'Sign out' }).count() === 0, 'no button but Sign out');
  },

  'a forged action from the viewer\'s session is 403': async () => {
    const before = (await daemon.env('shop')).expires_at;
    const statuses = await viewer.evaluate(async () => {
      const s = await (await fetch('/api/v1/session')).json();
      const h = { 'Content-Type': 'application/json', 'X-Idp-Csrf': s.csrf };
      const extend = await fetch('/api/v1/environments/shop/extend', { method: 'POST', headers: h, body: '{"ttl":"30d"}' });
      const destroy = await fetch('/api/v1/environments/shop', { method: 'DELETE', headers: h });
      const logs = await fetch('/api/v1/environments/shop/logs');
      return [extend.status, destroy.status, logs.status];
    });
    assert(JSON.stringify(statuses) === '[403,403,403]', `extend, destroy, logs: ${statuses}`);
    const after = await daemon.env('shop');
    assert(after.expires_at === before && after.phase === 'ready', 'nothing changed');
  },

  'a cross-site form post with a signed-in cookie is refused': async () => {
    const alice = await signIn('alice');
    await alice.waitForURL(daemon.url + '/');
    await alice.locator('#who').filter({ hasText: 'alice · developer' }).waitFor();
    const before = (await daemon.env('shop')).expires_at;
    gh.evilTarget = daemon.url + '/api/v1/environments/shop/extend';
    gh.evilBody = '{"ttl":"30d","x":"';
    const answered = alice.waitForResponse((r) => r.url() === gh.evilTarget);
    await alice.goto(gh.url + '/evil');
    const r = await answered;
    assert(r.status() === 403 || r.status() === 415 || r.status() === 401, `the forged post got ${r.status()}`);
    assert((await daemon.env('shop')).expires_at === before, 'the expiry did not move');
    // The same action from the dashboard's own page works: the refusal was the forgery's.
    await alice.goto(daemon.url + '/#/env/shop');
    await alice.locator('#extend').click();
    await alice.locator('#extend-status').filter({ hasText: 'Now expires' }).waitFor();
    assert((await daemon.env('shop')).expires_at !== before, 'the real extend moved the expiry');
  },

  'a user outside the allowed organisations is refused with the reason': async () => {
    const page = await signIn('mallory');
    const refusal = page.locator('#refusal');
    await refusal.waitFor();
    const text = await refusal.textContent();
    assert(text.includes('mallory') && text.includes('none of the organisations') && text.includes('acme'), `refusal: ${text}`);
    await page.goto(daemon.url + '/');
    await page.waitForURL('**/login');
  },

  'a forged OAuth state is refused': async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const r = await page.goto(daemon.url + '/auth/github/callback?code=x&state=forged');
    assert(r.status() === 400, `forged state: ${r.status()}`);
    await page.goto(daemon.url + '/');
    await page.waitForURL('**/login');
  },

  'after sign-out the pages ask to sign in': async () => {
    await viewer.locator('#signout').click();
    await viewer.waitForURL('**/login');
    await viewer.goto(daemon.url + '/#/audit');
    await viewer.waitForURL(/\/login(#.*)?$/); // the fragment survives the redirect
    await viewer.getByRole('link', { name: 'Sign in with GitHub' }).waitFor();
    const status = await viewer.evaluate(async () => (await fetch('/api/v1/environments')).status);
    assert(status === 401, `the API after sign-out: ${status}`);
  },
}, closeAll(tmp, { browser, daemon, gh }));
