// The dashboard's Forks page (issue 15): a developer approves a pull request from a fork with
// its Approve button; a viewer sees the request but no button; a fork's branch made of
// markup renders as text. The fork arrives as a signed pull_request webhook and its head as
// refs/pull/9/head of the watched repository, as on GitHub.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { GitHubDouble, k_client_secret } from './lib/github_double.mjs';
import { Daemon, assert, closeAll, exampleRepo, launchBrowser, loadPlaywright, oauthConfig, run, tempDir, waitFor } from './lib/harness.mjs';

loadPlaywright(); // skips (125) before anything starts when the browser is missing
const tmp = tempDir('idp-browser-forks-');
const gh = await new GitHubDouble({
  alice: { orgs: ['acme'], teams: ['acme/dev'] },
  carol: { orgs: ['acme'], teams: [] },
}).start();
const hookSecret = 'fork-hook-secret-' + crypto.randomBytes(4).toString('hex');
const repo = exampleRepo(path.join(tmp, 'app'));
const git = (...args) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
git('checkout', '-q', '-b', 'fork-work');
git('commit', '-q', '--allow-empty', '-m', 'a change from a fork');
const head = git('rev-parse', 'HEAD');
git('update-ref', 'refs/pull/9/head', head);
git('checkout', '-q', 'main');
git('branch', '-q', '-D', 'fork-work');
const markup = '<img/src=x/onerror=alert(1)>';
const config = oauthConfig(gh) + `repositories:
  - url: ${repo}
    github_repo: idp-tests/app
    forks: approve
    webhook_secret: env:IDP_TEST_HOOK_SECRET
`;
const daemon = await new Daemon(path.join(tmp, 'home'), config,
  { IDP_TEST_GITHUB_SECRET: k_client_secret, IDP_TEST_HOOK_SECRET: hookSecret }).start();
const browser = await launchBrowser();
const dialogs = [];

async function signIn(user) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  gh.nextUser = user;
  await page.goto(daemon.url + '/');
  await page.waitForURL('**/login');
  await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
  await page.locator('#authorize').click();
  await page.waitForURL(daemon.url + '/');
  await page.locator('#who').filter({ hasText: user }).waitFor();
  await page.getByRole('link', { name: 'Forks' }).click();
  await page.locator('tr[data-fork="idp-tests/app#9"]').waitFor();
  return page;
}

async function fork() {
  const r = await daemon.api('GET', '/forks');
  assert(r.status === 200, `GET /forks: ${r.status}`);
  return r.body.forks.find((f) => f.pr === 9);
}

await run('dashboard (forks)', {
  'a pull request from a fork is recorded as pending': async () => {
    const body = JSON.stringify({
      action: 'opened',
      number: 9,
      pull_request: {
        number: 9,
        user: { login: 'mallory' },
        head: { ref: markup, sha: head, repo: { full_name: 'mallory/app' } },
        base: { ref: 'main', repo: { full_name: 'idp-tests/app' } },
      },
      repository: { full_name: 'idp-tests/app', clone_url: repo },
      sender: { login: 'mallory' },
    });
    const r = await fetch(daemon.url + '/hooks/github', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-GitHub-Event': 'pull_request',
        'X-GitHub-Delivery': crypto.randomUUID(),
        'X-Hub-Signature-256': 'sha256=' + crypto.createHmac('sha256', hookSecret).update(body).digest('hex'),
      },
      body,
    });
    const j = await r.json();
    assert(r.status === 202 && j.status === 'pending', `webhook: ${r.status} ${JSON.stringify(j)}`);
    assert((await fork()).state === 'pending', 'pending');
  },

  'a viewer sees it, with no Approve button': async () => {
    const page = await signIn('carol');
    const row = page.locator('tr[data-fork="idp-tests/app#9"]');
    assert((await row.textContent()).includes('pending'), await row.textContent());
    assert(await row.locator('button.approve').count() === 0, 'no Approve button for a viewer');
    assert((await row.locator('td').nth(1).textContent()) === 'mallory/app:' + markup, 'the branch renders as text');
    assert(await page.locator('img').count() === 0, 'no <img> element was made from the branch');
    await page.context().close();
  },

  'a developer approves its head with the button': async () => {
    const page = await signIn('alice');
    const button = page.locator('tr[data-fork="idp-tests/app#9"] button.approve');
    assert((await button.textContent()) === 'Approve ' + head.slice(0, 7), await button.textContent());
    await button.click();
    await page.locator('tr[data-fork="idp-tests/app#9"]').filter({ hasText: 'approved' }).waitFor();
    const f = await waitFor('the approval to be recorded', async () => {
      const x = await fork();
      return x.state === 'approved' ? x : null;
    });
    assert(f.approved_commit === head, `approved ${f.approved_commit}`);
    assert(String(f.approved_by).includes('alice'), `approved by ${f.approved_by}`);
    assert(dialogs.length === 0, `no dialog opened: ${dialogs.join(', ')}`);
    await page.context().close();
  },
}, closeAll(tmp, { browser, daemon, gh }));
