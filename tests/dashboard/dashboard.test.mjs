// Browser end-to-end tests of the admin dashboard at /_/: a superuser sets up the seed chat app
// (messages with a relation to users and the create rule) through the UI only, then edits,
// filters, reads history, watches realtime and restores a backup. The tests run in order on one
// server and one page; each takes a screenshot into artifacts/.
//
// Screens whose endpoints the server does not have yet (history, realtime, backups) must show the
// "not available on this server" message; once the endpoint answers, the same test checks the
// real screen instead.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { TestServer, launchBrowser, ARTIFACTS, SUPERUSER_EMAIL, SUPERUSER_PASSWORD } from './harness.mjs';

const T = 15_000;

describe('dashboard', () => {
  let server;
  let browser;
  let page;
  const external = [];
  const pageErrors = [];
  let alice;

  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const toastText = () => page.locator('#toasts').innerText();

  /** Is the endpoint there? (404/405 = not yet.) */
  async function endpointExists(method, p, body) {
    const res = await server.api(method, p, body);
    return res.status !== 404 && res.status !== 405;
  }

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer().start();
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('request', (req) => {
      const u = req.url();
      if (!u.startsWith(server.url) && !u.startsWith('data:') && !u.startsWith('blob:')) external.push(u);
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('serves the embedded dashboard with content types', async () => {
    const index = await fetch(`${server.url}/_/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /text\/html/);
    assert.match(await index.text(), /app\.js/);
    const js = await fetch(`${server.url}/_/app.js`);
    assert.match(js.headers.get('content-type'), /javascript/);
    await js.text();
    const css = await fetch(`${server.url}/_/style.css`);
    assert.match(css.headers.get('content-type'), /text\/css/);
    await css.text();
    const route = await fetch(`${server.url}/_/some/client/route`);
    assert.equal(route.status, 200, 'client routes fall back to index.html');
    await route.text();
    const missing = await fetch(`${server.url}/_/missing.js`);
    assert.equal(missing.status, 404);
    await missing.text();
  });

  test('the OAuth2 popup pages (where /api/oauth2-redirect sends the popup) need no login', async () => {
    const popup = await browser.context.newPage();
    try {
      await popup.goto(`${server.url}/_/#/auth/oauth2-redirect-failure`);
      await popup.locator('[data-testid=oauth2-redirect]').waitFor();
      assert.match(await popup.locator('[data-testid=oauth2-redirect]').innerText(), /Auth failed/);
      await popup.goto(`${server.url}/_/#/auth/oauth2-redirect-success`);
      await popup.locator('text=Auth completed.').waitFor();
      assert.equal(await popup.locator('#login-email').count(), 0, 'no login form on the popup page');
    } finally {
      if (!popup.isClosed()) await popup.close();
    }
  });

  test('superuser login: a wrong password is shown as a message, then logs in', async () => {
    await page.goto(`${server.url}/_/`);
    await page.fill('#login-email', SUPERUSER_EMAIL);
    await page.fill('#login-password', 'wrong-password');
    await page.click('button[type=submit]');
    await page.locator('.error-box').waitFor();
    assert.match(await page.locator('.error-box').innerText(), /Failed to authenticate/i);
    await shot('01-login-error');
    await page.fill('#login-password', SUPERUSER_PASSWORD);
    await page.press('#login-password', 'Enter');
    await page.locator('.coll-list a[href="#/c/users"]').waitFor();
    assert.match(await page.locator('.topbar').innerText(), new RegExp(SUPERUSER_EMAIL));
    await shot('02-after-login');
  });

  test('creates the seed messages collection; a bad rule shows the error inline', async () => {
    await page.click('text=+ New collection');
    await page.fill('#coll-name', 'messages');
    // text field
    await page.selectOption('#add-field-type', 'text');
    await page.click('#add-field');
    await page.locator('.field-name').nth(0).fill('text');
    // user relation -> users
    await page.selectOption('#add-field-type', 'relation');
    await page.click('#add-field');
    const relRow = page.locator('.field-row').nth(1);
    await relRow.locator('.field-name').fill('user');
    await relRow.locator('select[aria-label="Related collection"]').selectOption({ label: 'users' });
    await relRow.locator('text=required').click();
    // unlock list/view, create rule with a typo first
    await page.click('#rule-listRule-lock');
    await page.click('#rule-viewRule-lock');
    await page.click('#rule-createRule-lock');
    await page.fill('#rule-createRule', 'user = @request.auth.id &&');
    await shot('03-collection-editor');
    await page.click('#collection-save');
    const ruleError = page.locator('.rule:has(#rule-createRule) .field-error');
    await ruleError.waitFor();
    assert.ok((await ruleError.innerText()).length > 0);
    await page.locator('.error-box').waitFor();
    await shot('04-collection-bad-rule');
    let res = await server.api('GET', '/api/collections/messages');
    assert.equal(res.status, 404, 'the collection was not created with a bad rule');

    await page.fill('#rule-createRule', 'user = @request.auth.id');
    await page.click('#collection-save');
    await page.waitForURL(/#\/c\/messages$/);
    await page.locator('table.records').waitFor();
    res = await server.api('GET', '/api/collections/messages');
    assert.equal(res.status, 200);
    const c = res.body;
    assert.equal(c.listRule, '');
    assert.equal(c.viewRule, '');
    assert.equal(c.createRule, 'user = @request.auth.id');
    assert.equal(c.updateRule, null);
    const names = c.fields.map((f) => `${f.name}:${f.type}`);
    for (const n of ['id:text', 'text:text', 'user:relation', 'created:autodate', 'updated:autodate']) assert.ok(names.includes(n), n);
    const users = (await server.api('GET', '/api/collections/users')).body;
    const rel = c.fields.find((f) => f.name === 'user');
    assert.equal(rel.collectionId, users.id);
    assert.equal(rel.required, true);
    await shot('05-messages-empty');
  });

  test('creates an auth record with a password in the users collection', async () => {
    await page.click('.coll-list a[href="#/c/users"]');
    await page.click('#new-record');
    const dlg = page.locator('dialog.drawer');
    await dlg.locator('input[name=email]').fill('alice@example.com');
    await dlg.locator('input[name=password]').fill('alicepass123');
    await dlg.locator('input[name=passwordConfirm]').fill('different123');
    await dlg.locator('input[name=name]').fill('Alice');
    await dlg.locator('#record-save').click();
    await dlg.locator('.error-box').waitFor();
    assert.match(await dlg.locator('.field-error').first().innerText(), /match/i);
    await page.screenshot({ path: path.join(ARTIFACTS, '06-record-validation-error.png') });
    await dlg.locator('input[name=passwordConfirm]').fill('alicepass123');
    await dlg.locator('#record-save').click();
    await dlg.waitFor({ state: 'detached' });
    await page.locator('td', { hasText: 'alice@example.com' }).waitFor();
    const list = await server.api('GET', '/api/collections/users/records?filter=' + encodeURIComponent('email="alice@example.com"'));
    assert.equal(list.body.items.length, 1);
    alice = list.body.items[0];
  });

  test('adds a message with the relation picker and edits it', async () => {
    await page.click('.coll-list a[href="#/c/messages"]');
    await page.click('#new-record');
    const dlg = page.locator('dialog.drawer');
    await dlg.locator('input[name=text]').fill('hello world');
    await dlg.locator('input[aria-label="user search"]').fill('alice');
    await dlg.locator('.rel-option', { hasText: alice.id }).click();
    await dlg.locator('.chip', { hasText: alice.id }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, '07-record-create.png') });
    await dlg.locator('#record-save').click();
    await dlg.waitFor({ state: 'detached' });
    const row = page.locator('tr.rec-row', { hasText: 'hello world' });
    await row.waitFor();

    await row.click();
    await dlg.locator('input[name=text]').fill('hello edited');
    await dlg.locator('#record-save').click();
    await dlg.waitFor({ state: 'detached' });
    await page.locator('tr.rec-row', { hasText: 'hello edited' }).waitFor();
    const list = await server.api('GET', '/api/collections/messages/records');
    assert.equal(list.body.items.length, 1);
    assert.equal(list.body.items[0].text, 'hello edited');
    assert.equal(list.body.items[0].user, alice.id);
    assert.match(await toastText(), /saved/i);
    await shot('08-records-table');
  });

  test('filters, sorts and pages the records table; a bad filter shows its error inline', async () => {
    for (const text of ['second message', 'third message']) {
      const r = await server.api('POST', '/api/collections/messages/records', { text, user: alice.id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    await page.click('button:has-text("Refresh")');
    await page.locator('tr.rec-row').nth(2).waitFor();
    assert.equal(await page.locator('tr.rec-row').count(), 3);

    await page.fill('#records-filter', 'text ~ "edited"');
    await page.press('#records-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 1);
    assert.match(await page.locator('tr.rec-row').innerText(), /hello edited/);

    // plain words search the text fields
    await page.fill('#records-filter', 'third');
    await page.press('#records-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 1 && document.querySelector('tr.rec-row').innerText.includes('third'));

    await page.fill('#records-filter', 'nosuchfield = 1');
    await page.press('#records-filter', 'Enter');
    const err = page.locator('.filter-error .error-box');
    await err.waitFor();
    assert.ok((await err.innerText()).length > 0);
    assert.equal(await page.locator('#records-filter').getAttribute('aria-invalid'), 'true');
    await shot('09-filter-error');

    await page.fill('#records-filter', '');
    await page.press('#records-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 3 && !document.querySelector('.filter-error .error-box'));

    // sort by text ascending, then descending
    await page.click('th button:has-text("text")');
    await page.waitForFunction(() => document.querySelector('tr.rec-row td:nth-child(2)')?.innerText === 'hello edited');
    await page.click('th button:has-text("text")');
    await page.waitForFunction(() => document.querySelector('tr.rec-row td:nth-child(2)')?.innerText === 'third message');

    // paging: 10 per page with 12 rows. The pause keeps the bulk rows in a later second than the
    // first three, which the point-in-time restore test relies on (the picker has 1 s resolution).
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 9; i++) await server.api('POST', '/api/collections/messages/records', { text: `bulk ${i}`, user: alice.id });
    await page.selectOption('select[aria-label="Rows per page"]', '10');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 10);
    await page.click('button:has-text("Next ›")');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 2);
    assert.match(await page.locator('.pager').innerText(), /Page 2 of 2/);

    // column picker hides a column
    await page.click('.col-picker summary');
    await page.locator('.col-picker-list label', { hasText: 'user' }).locator('input').uncheck();
    await page.waitForFunction(() => ![...document.querySelectorAll('th')].some((th) => th.innerText.trim() === 'user'));
    await page.click('.col-picker summary');
  });

  test('record history tab lists versions with time and actor (or says it is not available)', async () => {
    const rec = (await server.api('GET', '/api/collections/messages/records?filter=' + encodeURIComponent('text="hello edited"'))).body.items[0];
    await page.fill('#records-filter', 'text = "hello edited"');
    await page.press('#records-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.rec-row').length === 1);
    await page.locator('tr.rec-row').click();
    const dlg = page.locator('dialog.drawer');
    await dlg.locator('#tab-history').click();
    const has = await endpointExists('GET', `/api/collections/messages/records/${rec.id}/history`);
    if (has) {
      await dlg.locator('tr.version-row').nth(1).waitFor();
      const text = await dlg.locator('table.history').innerText();
      assert.match(text, /create/);
      assert.match(text, /update/);
    } else {
      await dlg.locator('[data-testid=not-available]').waitFor();
      assert.match(await dlg.locator('[data-testid=not-available]').innerText(), /not available on this server/);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, '10-record-history.png') });
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
  });

  test('realtime view shows live events (or says it is not available)', async () => {
    await page.click('.tabs a:has-text("Realtime")');
    const has = await (async () => {
      const res = await fetch(`${server.url}/api/realtime`, { signal: AbortSignal.timeout(3000) }).catch(() => null);
      if (!res) return false;
      const ok = res.status !== 404 && res.status !== 405;
      res.body?.cancel().catch(() => {});
      return ok;
    })();
    if (has) {
      await page.locator('.rt-status.ok').waitFor();
      await server.api('POST', '/api/collections/messages/records', { text: 'live one', user: alice.id });
      await page.locator('.event', { hasText: 'live one' }).waitFor();
      assert.match(await page.locator('.event').first().innerText(), /create/);
    } else {
      await page.locator('[data-testid=not-available]').waitFor();
    }
    await shot('11-realtime');
  });

  test('an API error is shown as a message (deleting a referenced collection)', async () => {
    await page.click('.coll-list a[href="#/c/users"]');
    await page.click('.tabs a:has-text("Edit collection")');
    await page.click('button:has-text("Delete collection")');
    await page.click('dialog.modal button:has-text("Delete collection")');
    await page.locator('.error-box').waitFor();
    assert.ok((await page.locator('.error-box').innerText()).length > 0);
    assert.equal((await server.api('GET', '/api/collections/users')).status, 200);
    await shot('12-collection-error');
  });

  test('settings: application name and batch switch are saved', async () => {
    await page.click('.topnav a:has-text("Settings")');
    await page.fill('#set-appName', 'ChatApp');
    await page.check('#set-batch');
    await page.click('#settings-save');
    await page.waitForFunction(() => document.getElementById('toasts').innerText.includes('Settings saved'));
    const s = await server.api('GET', '/api/settings');
    assert.equal(s.body.meta.appName, 'ChatApp');
    assert.equal(s.body.batch.enabled, true);
    await shot('13-settings');
  });

  test('backups: create, list and point-in-time restore (or says they are not available)', async () => {
    await page.click('.topnav a:has-text("Backups")');
    const has = await endpointExists('GET', '/api/backups');
    if (!has) {
      await page.locator('[data-testid=not-available]').waitFor();
      assert.match(await page.locator('[data-testid=not-available]').innerText(), /not available on this server/);
      await shot('14-backups');
      return;
    }
    await page.fill('#backup-name', 'ui_backup.zip');
    await page.click('#backup-create');
    const row = page.locator('tr.backup-row', { hasText: 'ui_backup.zip' });
    await row.waitFor();
    await shot('14-backups');
    const [download] = await Promise.all([page.waitForEvent('download'), row.locator('button:has-text("Download")').click()]);
    assert.equal(download.suggestedFilename(), 'ui_backup.zip');
    assert.equal(await download.failure(), null);
    await row.locator('button:has-text("Delete")').click();
    await page.click('dialog.modal button:has-text("Delete")');
    await row.waitFor({ state: 'detached' });
    assert.deepEqual((await server.api('GET', '/api/backups')).body.filter((b) => b.key === 'ui_backup.zip'), []);
    // Point-in-time: back to before the bulk rows were added (after the first three messages).
    const before = (await server.api('GET', '/api/collections/messages/records?sort=created&perPage=3')).body.items[2].created;
    const target = before.replace(/\.\d+Z$/, '').replace(' ', 'T');
    const t = new Date(`${target}Z`);
    t.setUTCSeconds(t.getUTCSeconds() + 1);
    await page.fill('#pitr-time', t.toISOString().slice(0, 19));
    await page.click('#pitr-restore');
    await page.click('dialog.modal button:has-text("Restore")');
    await page.waitForFunction(() => document.getElementById('toasts').innerText.includes('done'), null, { timeout: 60_000 });
    const after = (await server.api('GET', '/api/collections/messages/records?sort=created&perPage=50')).body.items.map((m) => m.text);
    assert.deepEqual(after, ['hello edited', 'second message', 'third message']);
    // the restore revoked every earlier token: the dashboard asks for a new login, then works
    // on the restored server
    await page.locator('#login-email').waitFor();
    assert.match(await page.locator('#toasts').innerText(), /log in again/);
    await page.fill('#login-email', SUPERUSER_EMAIL);
    await page.fill('#login-password', SUPERUSER_PASSWORD);
    await page.press('#login-password', 'Enter');
    await page.locator('.coll-list a[href="#/c/messages"]').waitFor();
    await shot('15-after-restore');
  });

  test('missing endpoints show "not available" and server failures show a message, never a blank screen', async () => {
    const notFound = { status: 404, contentType: 'application/json', body: JSON.stringify({ data: {}, message: 'File not found.', status: 404 }) };
    await page.route('**/api/backups', (r) => r.fulfill(notFound));
    await page.route('**/records/*/history', (r) => r.fulfill(notFound));
    await page.route('**/api/realtime', (r) => r.fulfill(notFound));
    try {
      await page.click('.topnav a:has-text("Backups")');
      await page.locator('[data-testid=not-available]', { hasText: 'Backups are not available on this server' }).waitFor();

      await page.click('.coll-list a[href="#/c/messages"]');
      await page.locator('tr.rec-row').first().click();
      const dlg = page.locator('dialog.drawer');
      await dlg.locator('#tab-history').click();
      await dlg.locator('[data-testid=not-available]', { hasText: 'history is not available on this server' }).waitFor();
      await page.keyboard.press('Escape');
      await dlg.waitFor({ state: 'detached' });

      await page.click('.tabs a:has-text("Realtime")');
      await page.locator('[data-testid=not-available]', { hasText: 'Realtime is not available on this server' }).waitFor();
    } finally {
      await page.unrouteAll();
    }
    // a proxy error page instead of JSON: the settings screen shows a message and a retry button
    await page.route('**/api/settings', (r) => r.fulfill({ status: 502, contentType: 'text/html', body: '<html>Bad Gateway</html>' }));
    try {
      await page.click('.topnav a:has-text("Settings")');
      await page.locator('main .error-box').waitFor();
      assert.match(await page.locator('main .error-box').innerText(), /502/);
      await page.locator('main button:has-text("Retry")').waitFor();
      await shot('17-server-error');
    } finally {
      await page.unrouteAll();
    }
    await page.click('main button:has-text("Retry")');
    await page.locator('#set-appName').waitFor();
  });

  test('works in a narrow window and makes no external requests or page errors', async () => {
    await page.setViewportSize({ width: 420, height: 860 });
    await page.click('.coll-list a[href="#/c/messages"]');
    await page.locator('table.records').waitFor();
    await shot('16-narrow');
    // keyboard: Tab reaches a record row and Enter opens it
    await page.locator('tr.rec-row').first().focus();
    await page.keyboard.press('Enter');
    await page.locator('dialog.drawer').waitFor();
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 1280, height: 860 });
    assert.deepEqual(external, [], 'no request leaves the server origin');
    assert.deepEqual(pageErrors, [], 'no uncaught page errors');
  });
});

describe('first-run installer', () => {
  let server;
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer({ superuser: false }).start();
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('the printed #/pbinstall link creates the first superuser, then logs in', async () => {
    // serve prints the link on a data dir without a superuser
    const deadline = Date.now() + 10_000;
    let link = null;
    while (!link && Date.now() < deadline) {
      link = (server.stderr.match(/(http:\/\/\S+\/_\/#\/pbinstall\/\S+)/) || [])[1];
      if (!link) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(link, `no installer link in:\n${server.stderr}`);
    assert.ok(link.startsWith(`${server.url}/_/#/pbinstall/`), link);

    // a forged token is refused with a way to the login screen
    await page.goto(`${server.url}/_/#/pbinstall/pbinstall.1.forged`);
    await page.fill('#install-email', SUPERUSER_EMAIL);
    await page.fill('#install-password', SUPERUSER_PASSWORD);
    await page.fill('#install-password-confirm', SUPERUSER_PASSWORD);
    await page.click('button[type=submit]');
    await page.locator('.error-box').waitFor();
    assert.match(await page.locator('.error-box').innerText(), /invalid or has expired/);
    await page.locator('a[href="#/login"]').waitFor();

    // the real link: a mismatched confirmation is shown, then the account is created
    await page.goto(link);
    await page.locator('#install-email').waitFor();
    await page.fill('#install-email', SUPERUSER_EMAIL);
    await page.fill('#install-password', SUPERUSER_PASSWORD);
    await page.fill('#install-password-confirm', 'something-else');
    await page.click('button[type=submit]');
    await page.locator('.error-box', { hasText: 'passwordConfirm' }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, '20-installer-error.png'), fullPage: true });
    await page.fill('#install-password-confirm', SUPERUSER_PASSWORD);
    await page.click('button[type=submit]');
    // logged in: the dashboard's collection list
    await page.locator('.coll-list').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, '21-installer-done.png'), fullPage: true });
    const list = await server.api('GET', '/api/collections/_superusers/records');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((r) => r.email), [SUPERUSER_EMAIL]);

    // the link is spent once a superuser exists
    const token = link.split('/pbinstall/')[1];
    const again = await fetch(`${server.url}/api/installer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, email: 'second@example.com', password: SUPERUSER_PASSWORD, passwordConfirm: SUPERUSER_PASSWORD }),
    });
    assert.equal(again.status, 400);
    await again.text();
    // logged in, the installer route goes to the dashboard
    await page.goto(link);
    await page.locator('.coll-list').waitFor();
    assert.deepEqual(pageErrors, [], 'no uncaught page errors');
  });
});
