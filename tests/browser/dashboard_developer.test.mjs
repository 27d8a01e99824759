// The dashboard as a developer signed in with GitHub (issue 13, must-show 1, 3, 4, 5):
// the list shows the user's environments; an environment's live logs show a line the app
// prints after the page opened; extend changes the countdown; destroy with a typed
// confirmation removes it from the list without a reload; a branch and a log line made of
// markup render as text and no dialog opens; a failed deploy shows its reason and log tail.
// Screenshots of every page go to IDP_SCREENSHOT_DIR (docs/images when refreshing docs).
import path from 'node:path';
import { GitHubDouble, k_client_secret } from './lib/github_double.mjs';
import { Daemon, assert, closeAll, exampleRepo, launchBrowser, loadPlaywright, oauthConfig, run, screenshotDir, tempDir, waitFor } from './lib/harness.mjs';

loadPlaywright(); // skips (125) before anything starts when the browser is missing
const tmp = tempDir('idp-browser-dev-');
const gh = await new GitHubDouble({
  alice: { orgs: ['acme'], teams: ['acme/dev'] },
}).start();
// Usage sampled every second: the list's Cost column has figures within the test.
const daemon = await new Daemon(path.join(tmp, 'home'), oauthConfig(gh) + 'cost:\n  sample_interval: 1s\n  currency: EUR\n',
  { IDP_TEST_GITHUB_SECRET: k_client_secret }).start();
const browser = await launchBrowser();
const shots = screenshotDir();
const xssBranch = '<img/src=x/onerror=alert(1)>';
const dialogs = [];
let page;

async function create(name, repo, branch, owner) {
  const r = await daemon.api('POST', '/environments', { repo, branch, name, owner, ttl: '2h' });
  assert(r.status === 202, `create ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}

async function shot(file) {
  await page.screenshot({ path: path.join(shots, file), fullPage: true });
}

await run('dashboard (developer)', {
  'environments are deployed': async () => {
    const app = exampleRepo(path.join(tmp, 'app'));
    const xss = exampleRepo(path.join(tmp, 'xss'), { branch: xssBranch });
    const broken = exampleRepo(path.join(tmp, 'broken'), {
      files: {
        '.idp/config.yml': 'template: api-service\nlocal:\n  build: "sh build.sh"\n  start: "node server.js"\n',
        'build.sh': "echo 'compiling 12 modules'\necho 'error: config.json is missing' >&2\nexit 3\n",
      },
    });
    await Promise.all([
      create('shop', app, 'main', 'alice'),
      create('xss', xss, xssBranch, 'alice'),
      create('broken', broken, 'main', 'alice'),
      create('bobs', app, 'main', 'bob'),
    ]);
    await Promise.all([daemon.waitPhase('shop', 'ready'), daemon.waitPhase('xss', 'ready'), daemon.waitPhase('bobs', 'ready'),
      daemon.waitPhase('broken', 'failed')]);
  },

  'sign in with GitHub lands on the user\'s environments': async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    gh.nextUser = 'alice';
    await page.goto(daemon.url + '/');
    await page.waitForURL('**/login');
    await shot('dashboard-sign-in.png');
    await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
    await page.locator('#authorize').click(); // on GitHub (the double)
    await page.waitForURL(daemon.url + '/');
    await page.locator('#who').filter({ hasText: 'alice · developer' }).waitFor();
    for (const name of ['shop', 'xss', 'broken']) await page.locator(`tr[data-env="${name}"]`).waitFor();
    assert(await page.locator('tr[data-env="bobs"]').count() === 0, 'another owner\'s environment is hidden ("Mine only" by default)');
    assert(await page.locator('#mine').isChecked(), '"Mine only" is on for a developer');
    assert(gh.requests.includes('POST /login/oauth/access_token') && gh.requests.includes('GET /api/v3/user/teams'), 'the double was asked');
    await page.evaluate(() => { window.__noReload = true; }); // gone if the page ever reloads
    await shot('dashboard-environments.png');
    await page.setViewportSize({ width: 390, height: 844 }); // a phone: the rows become cards
    await page.locator('tr[data-env="shop"] td[data-label="URL"]').waitFor();
    assert(await page.evaluate(() => document.documentElement.scrollWidth <= 400), 'no sideways scrolling on a phone');
    await shot('dashboard-phone.png');
    await page.setViewportSize({ width: 1280, height: 800 });
  },

  'a branch made of markup renders as text': async () => {
    const cell = page.locator('tr[data-env="xss"] .branch');
    assert(await cell.textContent() === xssBranch, `branch cell text: ${await cell.textContent()}`);
    assert(await page.locator('img').count() === 0, 'no <img> element was made from the branch');
    await page.locator('#q').fill('xss');
    await page.locator('#count').filter({ hasText: '1 of 4' }).waitFor();
    await page.locator('#q').fill('');
  },

  'live logs show a line printed after the page opened, as text': async () => {
    await page.locator('tr[data-env="shop"] a.env-link').click();
    await page.locator('#log[data-streaming="true"]').waitFor();
    const marker = `<script>alert(1)</script>marker-${Date.now()}`;
    const r = await daemon.viaRouter('shop', '/echo?msg=' + encodeURIComponent(marker));
    assert(r.status === 200, `the app answered ${r.status}`);
    await page.locator('#log .line').filter({ hasText: 'echo: ' + marker }).waitFor({ timeout: 30000 });
    assert(await page.locator('#log script').count() === 0, 'no <script> element in the log');
    await page.locator('#log-search').fill('marker-');
    await waitFor('the search to hide other lines', async () =>
      (await page.locator('#log .line:visible').count()) === 1);
    await page.locator('#log-search').fill('');
  },

  'extend changes the countdown': async () => {
    const before = await page.locator('#expires').getAttribute('data-expires');
    const countdownBefore = await page.locator('#expires').textContent();
    await page.locator('#ttl').selectOption('7d');
    await page.locator('#extend').click();
    await page.locator('#extend-status').filter({ hasText: 'Now expires' }).waitFor();
    await waitFor('the countdown to change', async () =>
      (await page.locator('#expires').getAttribute('data-expires')) !== before);
    const after = await page.locator('#expires').getAttribute('data-expires');
    assert(Date.parse(after) > Date.parse(before), `expiry moved later: ${before} → ${after}`);
    const text = await page.locator('#expires').textContent();
    assert(text !== countdownBefore && /^in \d+d/.test(text), `countdown reads ${text} (was ${countdownBefore})`);
    await shot('dashboard-environment.png');
  },

  'a failed deploy shows its reason and log tail': async () => {
    await page.goto(daemon.url + '/#/env/broken');
    await page.locator('#reason').filter({ hasText: 'exit code 3' }).waitFor();
    assert((await page.locator('#reason').textContent()).includes('error: config.json is missing'), 'the reason names the error');
    await page.locator('.revision[data-status="failed"] pre.tail').filter({ hasText: 'error: config.json is missing' }).first().waitFor();
    await shot('dashboard-failed.png');
    await page.evaluate(() => { window.__noReload = true; });
  },

  'templates and audit log pages': async () => {
    await page.locator('nav a[data-nav="templates"]').click();
    await page.locator('.template[data-template="scheduled-worker"]').waitFor();
    await page.locator('.template[data-template="api-service"]').waitFor();
    // The scheduled-worker's schedule preview, computed by the server's parser as one types.
    const expr = page.locator('.template[data-template="scheduled-worker"] #schedule-expr');
    await expr.fill('rate(5 minutes)');
    const runs = page.locator('#schedule-runs li');
    await waitFor('five runs of rate(5 minutes)', async () => (await runs.count()) === 5 &&
      (await page.locator('#schedule-status').textContent()).startsWith('Next runs if deployed now'));
    const at = await runs.evaluateAll((li) => li.map((x) => Date.parse(x.dataset.at)));
    assert(at.every((t, i) => i === 0 || t - at[i - 1] === 5 * 60 * 1000), `runs 5 minutes apart: ${at}`);
    assert(/^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC · .+ local$/.test(await runs.first().textContent()), `a run in UTC and local time: ${await runs.first().textContent()}`);
    await expr.fill('cron(61 * * * ? *)');
    await page.locator('#schedule-status.error').filter({ hasText: 'at column 6: expected a minute 0-59, got "61"' }).waitFor();
    assert(await runs.count() === 0, 'no runs listed for an invalid expression');
    await expr.fill('cron(<b>x</b> * * * ? *)'); // markup in the expression comes back in the error as text
    await page.locator('#schedule-status.error').filter({ hasText: 'at column 6' }).waitFor();
    assert(await page.locator('#schedule-status b').count() === 0, 'the error is text, not markup');
    await expr.fill('cron(0 9 ? * MON-FRI *)');
    await waitFor('five weekday runs at 09:00 UTC', async () => (await runs.count()) === 5 &&
      (await runs.allTextContents()).every((t) => t.includes(' 09:00 UTC')));
    await shot('dashboard-templates.png');
    await page.locator('nav a[data-nav="audit"]').click();
    // The extend above, by the GitHub identity (not a header).
    await page.locator('#audit tbody tr').filter({ hasText: 'extend' }).filter({ hasText: 'alice (GitHub developer, dashboard)' }).first().waitFor();
    await shot('dashboard-audit.png');
  },

  'destroy with typed confirmation removes it from the list without a reload': async () => {
    await page.locator('nav a[data-nav="envs"]').click();
    await page.locator('tr[data-env="xss"] a.env-link').click();
    await page.locator('#destroy').click();
    assert(await page.locator('#destroy-confirm').isDisabled(), 'confirm is disabled until the name is typed');
    await page.locator('#confirm-name').fill('xs');
    assert(await page.locator('#destroy-confirm').isDisabled(), 'a wrong name does not enable it');
    await page.locator('#confirm-name').fill('xss');
    await page.locator('#destroy-confirm').click();
    await page.locator('#destroy-status').filter({ hasText: 'Destroy started' }).waitFor();
    await page.locator('a', { hasText: '← all environments' }).click();
    await page.locator('tr[data-env="shop"]').waitFor();
    await page.locator('tr[data-env="xss"]').waitFor({ state: 'detached', timeout: 60000 });
    assert(await page.evaluate(() => window.__noReload === true), 'the page did not reload');
    await daemon.waitPhase('xss', 'destroyed');
  },

  'the list shows what each environment cost so far (issue 12)': async () => {
    await waitFor('shop sampled', async () => {
      const r = await daemon.api('GET', '/cost');
      return r.status === 200 && r.body.lines.some(l => l.name === 'shop' && l.running_hours > 0);
    });
    const fresh = await page.context().newPage();
    await fresh.goto(daemon.url + '/');
    const cell = fresh.locator('tr[data-env="shop"] td[data-label="Cost"]');
    await cell.waitFor();
    await waitFor('a cost in EUR', async () => /^\d+\.\d\d EUR$/.test(await cell.textContent()));
    assert(/^about \d+\.\d\d EUR\/day, \d+\.\d\d EUR this month/.test(await cell.getAttribute('title')), `tooltip: ${await cell.getAttribute('title')}`);
    assert(await fresh.locator('th', { hasText: 'Cost' }).count() === 1, 'a Cost column');
    await fresh.close();
  },

  'a sleeping environment says so in the list and on its page (issue 12)': async () => {
    const r = await daemon.api('POST', '/environments/shop/sleep', { reason: 'QA is done for today' });
    assert(r.status === 202, `sleep: ${r.status} ${JSON.stringify(r.body)}`);
    await waitFor('shop asleep', async () => {
      const e = await daemon.api('GET', '/environments/shop');
      return e.status === 200 && e.body.sleep && e.body.sleep.state === 'asleep';
    });
    const fresh = await page.context().newPage();
    await fresh.goto(daemon.url + '/');
    await fresh.locator('tr[data-env="shop"] .sleeping', { hasText: 'sleeping' }).waitFor();
    await fresh.goto(daemon.url + '/#/env/shop');
    const fact = fresh.locator('#sleep');
    await fact.waitFor();
    assert(/sleeping: its next request wakes it \(by .*QA is done for today\)/.test(await fact.textContent()), `sleep fact: ${await fact.textContent()}`);
    await fresh.close();
  },

  'no dialog opened': async () => {
    assert(dialogs.length === 0, `dialogs opened: ${JSON.stringify(dialogs)}`);
  },
}, closeAll(tmp, { browser, daemon, gh }));
