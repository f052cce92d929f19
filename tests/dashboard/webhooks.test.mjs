// Browser test of Settings › Webhooks (#20): the list, creating a webhook (field errors first,
// then a valid one pointing at a real receiver on loopback started here), the delivery it
// makes, editing (the secret stays write-only), the delivery log, dead letters, replay, and
// delete. One server, one page; each step asserts what the user sees and the API state.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { TestServer, launchBrowser, login, ARTIFACTS } from './harness.mjs';

const T = 15_000;

/** A webhook receiver: records every POST body and answers 200. */
function startReceiver() {
  const received = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(body || 'null') });
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${srv.address().port}/hook`, received, close: () => new Promise((r) => srv.close(r)),
  })));
}

describe('webhooks screen', () => {
  let server;
  let browser;
  let page;
  let receiver;
  const pageErrors = [];
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const hooks = async () => (await server.api('GET', '/api/webhooks')).body.items;

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer().start();
    receiver = await startReceiver();
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await login(page, server);
    const res = await server.api('POST', '/api/collections', {
      name: 'posts', type: 'base', listRule: '', viewRule: '', createRule: '',
      fields: [{ name: 'title', type: 'text' }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (receiver) await receiver.close();
  });

  test('create (with field errors first), deliver, edit, logs, replay, delete', async () => {
    await page.goto(`${server.url}/_/#/settings/webhooks`);
    await page.locator('td.empty', { hasText: 'No webhooks.' }).waitFor();

    await page.click('#webhook-new');
    const form = page.locator('form.webhook-form');
    await form.locator('input[name=url]').fill('ftp://nowhere');
    await form.locator('input[name=secret]').fill('short');
    const [bad] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/webhooks') && r.request().method() === 'POST'),
      form.locator('button[type=submit]').click(),
    ]);
    assert.equal(bad.status(), 400);
    await page.locator('form.webhook-form .field-error', { hasText: 'Must be a valid url.' }).waitFor();
    assert.equal((await hooks()).length, 0, 'nothing stored');

    const fixed = page.locator('form.webhook-form');
    await fixed.locator('input[name=url]').fill(receiver.url);
    await fixed.locator('input[name=collections]').fill('posts');
    await fixed.locator('input[name=secret]').fill('dashboard-secret-1');
    await fixed.locator('input[name=event-delete]').uncheck();
    const [ok] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/webhooks') && r.request().method() === 'POST'),
      fixed.locator('button[type=submit]').click(),
    ]);
    assert.equal(ok.status(), 200, await ok.text());
    await page.locator('tr.webhook-row').waitFor();
    const [hook] = await hooks();
    assert.deepEqual(hook.collections, ['posts']);
    assert.deepEqual(hook.events, ['create', 'update']);
    assert.equal(hook.hasSecret, true);
    assert.ok(!JSON.stringify(hook).includes('dashboard-secret-1'), 'the secret is never returned');
    assert.match(await page.locator('tr.webhook-row').innerText(), /posts\s+create, update\s+active/);

    // A record change reaches the receiver; the delivery log shows it.
    const created = await server.api('POST', '/api/collections/posts/records', { title: 'hello' });
    assert.equal(created.status, 200);
    const deadline = Date.now() + T;
    while (receiver.received.length < 1) {
      assert.ok(Date.now() < deadline, 'the receiver got no delivery');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(receiver.received[0].body.record.title, 'hello');
    assert.match(receiver.received[0].headers['x-pocketlog-signature'], /^sha256=[0-9a-f]{64}$/);
    await page.click('tr.webhook-row button:has-text("Deliveries")');
    await page.locator('tr.delivery-row').first().waitFor();
    assert.match(await page.locator('tr.delivery-row').first().innerText(), /create\s+posts\s+\S+\s+1\s+200/);
    await shot('60-settings-webhooks');

    // Replay from the delivered position: the receiver gets it again.
    const position = receiver.received[0].body.position;
    await page.fill('input[name=replay-from]', String(position));
    const [replayed] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/replay')),
      page.click('form.webhook-replay button[type=submit]'),
    ]);
    assert.equal(replayed.status(), 200);
    while (receiver.received.length < 2) {
      assert.ok(Date.now() < deadline + T, 'the replay delivered nothing');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(receiver.received[1].body.position, position);

    await page.click('tr.webhook-row button:has-text("Dead letters")');
    await page.locator('td.empty', { hasText: 'No dead letters.' }).waitFor();

    // Edit: pause it; the secret field stays empty and the stored secret is kept.
    await page.click('tr.webhook-row button:has-text("Edit")');
    const edit = page.locator('form.webhook-form');
    assert.equal(await edit.locator('input[name=secret]').inputValue(), '');
    await edit.locator('input[name=active]').uncheck();
    const [patched] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/webhooks/') && r.request().method() === 'PATCH'),
      edit.locator('button[type=submit]').click(),
    ]);
    assert.equal(patched.status(), 200);
    await page.locator('tr.webhook-row', { hasText: 'paused' }).waitFor();
    const [paused] = await hooks();
    assert.equal(paused.active, false);
    assert.equal(paused.hasSecret, true);

    // Delete (confirmed).
    await page.click('tr.webhook-row button:has-text("Delete")');
    const [deleted] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/webhooks/') && r.request().method() === 'DELETE'),
      page.click('dialog button:has-text("Delete")'),
    ]);
    assert.equal(deleted.status(), 204);
    await page.locator('td.empty', { hasText: 'No webhooks.' }).waitFor();
    assert.equal((await hooks()).length, 0);
    assert.deepEqual(pageErrors, []);
  });
});
