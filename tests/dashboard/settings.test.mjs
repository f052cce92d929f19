// Browser tests of the Logs screen and the settings screens (#15, #16, #17): request logs with a
// filter, the SVG chart and the detail drawer; mail (SMTP) with "send test e-mail" to a real SMTP
// sink; files storage and backups S3 with "test connection"; rate limits, trusted proxy and
// superuser IPs; crons with "run now"; collections export and import; the SQL console.
// One server, one page; each test asserts what the user sees and the API state.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { TestServer, launchBrowser, login, startSmtpSink, ARTIFACTS, SUPERUSER_EMAIL } from './harness.mjs';

const T = 15_000;

describe('logs and settings screens', () => {
  let server;
  let browser;
  let page;
  let sink;
  const pageErrors = [];
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const toastText = () => page.locator('#toasts').innerText();
  const settings = async () => (await server.api('GET', '/api/settings')).body;
  /** Clicks a settings form's Save and waits for its PATCH to succeed and the form to redraw. */
  async function saveSettings(button) {
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/settings') && r.request().method() === 'PATCH'),
      page.click(button),
    ]);
    assert.equal(res.status(), 200, await res.text());
    await page.locator(`${button}:not([disabled])`).waitFor();
  }

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer().start();
    sink = await startSmtpSink();
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await login(page, server);
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (sink) await sink.close();
  });

  test('logs: guest requests listed, filtered, charted and opened in a drawer', async () => {
    for (let i = 0; i < 3; i++) await (await fetch(`${server.url}/api/collections/nope${i}/records`)).text();
    for (let i = 0; i < 2; i++) await (await fetch(`${server.url}/api/collections/users/records?filter=${encodeURIComponent('(((')}`)).text();
    // the request log is written off the request path: wait until the five entries are there
    // (the guest 4xx answers are exactly these five; other guest requests, such as logins, vary)
    const errors = 'data.status >= 400';
    const count = async (f) => (await server.api('GET', `/api/logs?perPage=1&filter=${encodeURIComponent(f)}`)).body.totalItems;
    const deadline = Date.now() + T;
    while ((await count(`${errors} && data.auth != "_superusers"`)) < 5) {
      assert.ok(Date.now() < deadline, 'the request log did not record the guest requests');
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.click('.topnav a:has-text("Logs")');
    await page.locator('tr.log-row', { hasText: '/api/collections/nope2/records' }).waitFor();
    assert.ok((await page.locator('tr.log-row').count()) >= 5);
    assert.equal(await page.locator('tr.log-row', { hasText: '/api/logs' }).count(), 0, 'superuser requests are hidden by default');
    const chart = page.locator('svg.logs-chart');
    await page.fill('#logs-filter', errors);
    await page.press('#logs-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.log-row').length === 5);
    await page.waitForFunction(() => document.querySelector('svg.logs-chart')?.getAttribute('data-total') === '5');
    const stats = (await server.api('GET', `/api/logs/stats?filter=${encodeURIComponent(`(${errors}) && data.auth != "_superusers"`)}`)).body;
    assert.equal(stats.reduce((n, p) => n + p.total, 0), 5);
    assert.equal(await chart.locator('rect.bar').count(), stats.length);
    assert.match(await chart.getAttribute('aria-label'), /^5 requests/);
    assert.match(await page.locator('[data-testid=logs-total]').innerText(), /^5 entries/);
    await shot('40-logs');

    await page.fill('#logs-filter', 'data.status = 404');
    await page.press('#logs-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.log-row').length === 3);
    for (const text of await page.locator('tr.log-row').allInnerTexts()) assert.match(text, /GET \/api\/collections\/nope\d\/records\s+404/);
    assert.equal(await chart.getAttribute('data-total'), '3');

    // a bad filter is an inline error
    await page.fill('#logs-filter', 'data.status = ');
    await page.press('#logs-filter', 'Enter');
    await page.locator('main .error-box').waitFor();
    assert.equal(await page.getAttribute('#logs-filter', 'aria-invalid'), 'true');

    // superuser requests (this dashboard's) appear when included
    await page.fill('#logs-filter', 'data.status = 404');
    await page.press('#logs-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.log-row').length === 3);
    await page.check('#logs-superusers');
    await page.fill('#logs-filter', '');
    await page.press('#logs-filter', 'Enter');
    await page.locator('tr.log-row', { hasText: '/api/logs' }).first().waitFor();

    // detail drawer (guests only again: the dashboard's own query mentions nope1 too)
    await page.uncheck('#logs-superusers');
    await page.fill('#logs-filter', 'data.url ~ "nope1"');
    await page.press('#logs-filter', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr.log-row').length === 1);
    await page.locator('tr.log-row').click();
    const dlg = page.locator('dialog.drawer');
    await dlg.locator('dl.log-detail').waitFor();
    const detail = await dlg.locator('dl.log-detail').innerText();
    assert.match(detail, /data\.url\s+\/api\/collections\/nope1\/records/);
    assert.match(detail, /data\.status\s+404/);
    assert.match(detail, /data\.method\s+GET/);
    await shot('41-log-detail');
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
  });

  test('mail settings: SMTP saved with a write-only password; "send test e-mail" reaches the SMTP server', async () => {
    await page.goto(`${server.url}/_/#/settings/mail`);
    await page.locator('#smtp-host').waitFor();
    // SMTP disabled: the test mail fails with the server's message in the dialog
    await page.click('#mail-test');
    await page.fill('#test-email-to', 'someone@example.com');
    await page.click('#test-email-send');
    await page.locator('dialog .error-box').waitFor();
    assert.match(await page.locator('dialog .error-box').innerText(), /Failed to send the test email/);
    await page.click('dialog button:has-text("Cancel")');

    await page.fill('#mail-sender-name', 'Chat Support');
    await page.fill('#mail-sender-address', 'support@chat.test');
    await page.check('#smtp-enabled');
    await page.fill('#smtp-host', '127.0.0.1');
    await page.fill('#smtp-port', String(sink.port));
    await page.fill('#smtp-username', 'mailer');
    await page.fill('#smtp-password', 'smtp-secret');
    await saveSettings('#mail-save');
    const s = await settings();
    assert.equal(s.smtp.enabled, true);
    assert.equal(s.smtp.host, '127.0.0.1');
    assert.equal(s.smtp.port, sink.port);
    assert.equal(s.smtp.username, 'mailer');
    assert.ok(!s.smtp.password, 'the password is never returned');
    assert.equal(s.meta.senderAddress, 'support@chat.test');
    assert.equal(await page.inputValue('#smtp-password'), '', 'the password input starts empty again');

    await page.click('#mail-test');
    await page.fill('#test-email-to', 'someone@example.com');
    await page.selectOption('#test-email-template', 'password-reset');
    await page.click('#test-email-send');
    await page.waitForFunction(() => document.getElementById('toasts').innerText.includes('Test e-mail sent'));
    const [mail] = await sink.waitFor(1);
    assert.deepEqual(mail.rcpt, ['RCPT TO:<someone@example.com>']);
    assert.match(mail.from, /support@chat\.test/);
    assert.match(mail.data, /Subject: Reset your .* password/);
    // the stored password was used to sign in to the SMTP server
    assert.equal(Buffer.from(mail.auth.replace(/^PLAIN /, ''), 'base64').toString(), '\0mailer\0smtp-secret');
    await shot('42-settings-mail');
  });

  test('files storage and backups S3: saved with a write-only secret; "test connection" shows the answer', async () => {
    await page.click('.topnav a:has-text("Settings")');
    await page.click('.subnav a:has-text("Files storage")');
    await page.locator('#s3-endpoint').waitFor();
    await page.check('#s3-enabled');
    await page.fill('#s3-endpoint', 'http://127.0.0.1:9');
    await page.fill('#s3-bucket', 'uploads');
    await page.fill('#s3-region', 'us-east-1');
    await page.fill('#s3-access-key', 'AKIATEST');
    await page.fill('#s3-secret', 's3-secret');
    await page.check('#s3-path-style');
    await saveSettings('#storage-save');
    let s = await settings();
    assert.deepEqual({ ...s.s3, secret: undefined }, { enabled: true, bucket: 'uploads', region: 'us-east-1', endpoint: 'http://127.0.0.1:9', accessKey: 'AKIATEST', forcePathStyle: true, secret: undefined });
    assert.ok(!s.s3.secret, 'the secret is never returned');
    // nothing listens on the endpoint: the test fails and says so (404 until the server has the endpoint)
    await page.click('#s3-test-storage');
    await page.locator('[data-testid=s3-test-error] .error-box').waitFor();
    assert.ok((await page.locator('[data-testid=s3-test-error]').innerText()).length > 0);
    await shot('43-settings-storage');
    await page.uncheck('#s3-enabled');
    await saveSettings('#storage-save');

    await page.click('.subnav a:has-text("Backups")');
    await page.locator('#backups-cron').waitFor();
    await page.fill('#backups-cron', '0 3 * * *');
    await page.fill('#backups-keep', '5');
    await page.fill('#backups-s3-bucket', 'backups');
    await page.fill('#backups-s3-endpoint', 'http://127.0.0.1:9');
    await page.fill('#backups-s3-secret', 'b-secret');
    await saveSettings('#backups-save');
    s = await settings();
    assert.equal(s.backups.cron, '0 3 * * *');
    assert.equal(s.backups.cronMaxKeep, 5);
    assert.equal(s.backups.s3.bucket, 'backups');
    assert.ok(!s.backups.s3.secret);
    assert.equal(s.s3.enabled, false);
    await page.click('#s3-test-backups');
    await page.locator('[data-testid=s3-test-error] .error-box').waitFor();
  });

  test('application settings: rate limit rules editor, trusted proxy headers, superuser IPs', async () => {
    await page.click('.subnav a:has-text("Application")');
    await page.locator('#set-rl-enabled').waitFor();
    const before = (await settings()).rateLimits.rules.length;
    await page.click('#rl-add');
    const rule = page.locator('li.rate-rule').last();
    await rule.locator('.rl-label').fill('/api/collections/users/records');
    await rule.locator('.rl-audience').selectOption('@guest');
    await rule.locator('.rl-max').fill('2');
    await rule.locator('.rl-duration').fill('60');
    await page.check('#set-rl-enabled');
    await page.fill('#set-proxy-headers', 'X-Forwarded-For');
    await page.check('#set-proxy-leftmost');
    await page.fill('#set-superuser-ips', '127.0.0.1, 10.0.0.0/8');
    await saveSettings('#settings-save');
    let s = await settings();
    assert.equal(s.rateLimits.enabled, true);
    assert.equal(s.rateLimits.rules.length, before + 1);
    assert.deepEqual(s.rateLimits.rules.at(-1), { label: '/api/collections/users/records', audience: '@guest', duration: 60, maxRequests: 2 });
    assert.deepEqual(s.trustedProxy, { headers: ['X-Forwarded-For'], useLeftmostIP: true });
    assert.deepEqual(s.superuserIPs, ['127.0.0.1', '10.0.0.0/8']);
    // the rule applies: the third guest request within the minute is refused
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${server.url}/api/collections/users/records`);
      await r.text();
      statuses.push(r.status);
    }
    assert.equal(statuses[2], 429, `statuses ${statuses}`);
    await shot('44-settings-application');

    // a bad rule shows the server's error next to it; then remove the rule and the restrictions
    await rule.locator('.rl-label').fill('');
    await page.click('#settings-save');
    await page.locator('main .error-box').waitFor();
    assert.match(await page.locator('li.rate-rule').last().locator('.field-error').innerText(), /Cannot be blank/);
    await page.locator('li.rate-rule').last().locator('button[aria-label^="Remove rule"]').click();
    await page.uncheck('#set-rl-enabled');
    await page.fill('#set-superuser-ips', '');
    await page.click('#settings-save');
    await page.waitForFunction(() => !document.querySelector('main .error-box'));
    s = await settings();
    assert.equal(s.rateLimits.enabled, false);
    assert.equal(s.rateLimits.rules.length, before);
    assert.deepEqual(s.superuserIPs, []);
  });

  test('crons: the jobs are listed and "run now" runs one', async () => {
    await page.click('.subnav a:has-text("Crons")');
    await page.locator('tr.cron-row').first().waitFor();
    const jobs = (await server.api('GET', '/api/crons')).body;
    assert.equal(await page.locator('tr.cron-row').count(), jobs.length);
    const row = page.locator('tr.cron-row[data-id="__pbLogsCleanup__"]');
    assert.match(await row.innerText(), /__pbLogsCleanup__\s+0 \*\/6 \* \* \*/);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/crons/__pbLogsCleanup__') && r.request().method() === 'POST'),
      row.locator('button:has-text("Run now")').click(),
    ]);
    assert.equal(res.status(), 204);
    await page.waitForFunction(() => document.getElementById('toasts').innerText.includes('__pbLogsCleanup__ ran'));
    await shot('45-settings-crons');
  });

  test('collections export and import (reviewed first; a bad import changes nothing)', async () => {
    await page.click('.subnav a:has-text("Export collections")');
    await page.locator('#export-json').waitFor();
    const exported = JSON.parse(await page.inputValue('#export-json'));
    const names = exported.map((c) => c.name);
    for (const n of ['users', '_superusers']) assert.ok(names.includes(n), n);
    assert.ok(exported.every((c) => !('created' in c)));
    await page.uncheck('input[aria-label="Export _superusers"]');
    assert.ok(!JSON.parse(await page.inputValue('#export-json')).some((c) => c.name === '_superusers'));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-download')]);
    assert.equal(download.suggestedFilename(), 'pb_schema.json');

    await page.click('.subnav a:has-text("Import collections")');
    await page.fill('#import-json', 'not json');
    await page.click('#import-review');
    await page.locator('main .error-box', { hasText: 'Invalid collections JSON' }).waitFor();
    const incoming = [{ name: 'imported_notes', type: 'base', listRule: '', fields: [{ name: 'body', type: 'text' }] }];
    await page.fill('#import-json', JSON.stringify(incoming));
    await page.click('#import-review');
    await page.locator('[data-testid=import-diff]', { hasText: 'New: imported_notes' }).waitFor();
    await page.click('dialog.modal button:has-text("Import")');
    await page.locator('.coll-list a[href="#/c/imported_notes"]').waitFor();
    const c = (await server.api('GET', '/api/collections/imported_notes')).body;
    assert.equal(c.listRule, '');
    assert.ok(c.fields.some((f) => f.name === 'body' && f.type === 'text'));

    // an invalid collection: the server's error is shown, nothing is created
    await page.goto(`${server.url}/_/#/settings/import-collections`);
    await page.fill('#import-json', JSON.stringify([{ name: 'bad one', type: 'base', fields: [] }]));
    await page.click('#import-review');
    await page.click('dialog.modal button:has-text("Import")');
    await page.locator('main .error-box').waitFor();
    assert.equal((await server.api('GET', '/api/collections?filter=' + encodeURIComponent('name="bad one"'))).body.items.length, 0);
    await shot('46-settings-import');
  });

  test('SQL console: a query result is a table; a write is refused and changes nothing', async () => {
    await page.click('.subnav a:has-text("SQL console")');
    await page.fill('#sql-query', 'SELECT email, 1 + 1 AS two FROM _superusers');
    await page.click('#sql-run');
    await page.locator('table.sql-table tbody tr').first().waitFor();
    assert.deepEqual(await page.locator('table.sql-table th').allInnerTexts(), ['email', 'two']);
    assert.deepEqual(await page.locator('table.sql-table tbody tr').first().locator('td').allInnerTexts(), [SUPERUSER_EMAIL, '2']);
    assert.match(await page.locator('[data-testid=sql-summary]').innerText(), /^1 row/);
    await page.fill('#sql-query', 'DELETE FROM _superusers');
    await page.locator('#sql-query').press('Control+Enter');
    await page.locator('.sql-result .error-box').waitFor();
    const list = await server.api('GET', '/api/collections/_superusers/records');
    assert.equal(list.body.items.length, 1);
    await shot('47-sql');
    assert.deepEqual(pageErrors, []);
    assert.match(await toastText(), /./);
  });
});
