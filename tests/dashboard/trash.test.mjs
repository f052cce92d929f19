// Browser tests of the trash and revert screens (#20): a collection's Trash tab lists its
// deleted records and restores one (reporting a relation that points at a record deleted
// since); the record drawer's History tab reverts to an earlier version through
// POST …/revert and shows the broken relation; the collection editor shows and saves the
// restoreRule. One server and one page; each test asserts what the user sees and the API state.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { TestServer, launchBrowser, login, ARTIFACTS } from './harness.mjs';

const T = 15_000;

describe('trash, restore and revert', () => {
  let server;
  let browser;
  let page;
  let tags;
  const pageErrors = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer().start();
    let res = await server.api('POST', '/api/collections', {
      name: 'tags', type: 'base', listRule: '', viewRule: '', fields: [{ name: 'label', type: 'text' }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    res = await server.api('POST', '/api/collections', {
      name: 'posts', type: 'base', listRule: '', viewRule: '',
      fields: [
        { name: 'title', type: 'text', presentable: true },
        { name: 'tags', type: 'relation', collectionId: res.body.id, maxSelect: 5 },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    tags = [];
    for (const label of ['keep', 'gone']) {
      tags.push((await server.api('POST', '/api/collections/tags/records', { label })).body.id);
    }
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await login(page, server);
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('the Trash tab lists deleted records and restores one, reporting broken relations', async () => {
    const post = (await server.api('POST', '/api/collections/posts/records', { title: 'Doomed post', tags })).body;
    assert.equal((await server.api('DELETE', `/api/collections/posts/records/${post.id}`)).status, 204);
    assert.equal((await server.api('DELETE', `/api/collections/tags/records/${tags[1]}`)).status, 204);
    await page.click('.coll-list a[href="#/c/posts"]');
    await page.click('.tabs a:has-text("Trash")');
    const row = page.locator('tr.trash-row', { hasText: 'Doomed post' });
    await row.waitFor();
    assert.equal(await row.getAttribute('data-id'), post.id);
    await page.screenshot({ path: path.join(ARTIFACTS, '20-trash.png'), fullPage: true });
    await row.locator('button:has-text("Restore")').click();
    await page.click('dialog.modal button:has-text("Restore record")');
    const notice = page.locator('[data-testid=broken-relations]');
    await notice.waitFor();
    assert.match(await notice.innerText(), new RegExp(tags[1]));
    await row.waitFor({ state: 'detached' });
    await page.locator('table.trash td.empty').waitFor();
    const back = await server.api('GET', `/api/collections/posts/records/${post.id}`);
    assert.equal(back.status, 200);
    assert.equal(back.body.title, 'Doomed post');
  });

  test('the History tab reverts to an earlier version through the revert endpoint', async () => {
    const post = (await server.api('POST', '/api/collections/posts/records', { title: 'Version one', tags: [tags[0]] })).body;
    const other = (await server.api('POST', '/api/collections/tags/records', { label: 'temp' })).body.id;
    await server.api('PATCH', `/api/collections/posts/records/${post.id}`, { title: 'Version two', tags: [other] });
    await server.api('PATCH', `/api/collections/posts/records/${post.id}`, { title: 'Version three', tags: [tags[0], other] });
    // the tag of version two goes away: reverting to it reports the broken relation
    assert.equal((await server.api('DELETE', `/api/collections/tags/records/${other}`)).status, 204);
    const history = (await server.api('GET', `/api/collections/posts/records/${post.id}/history`)).body.items;
    await page.click('.tabs a:has-text("Records")');
    const row = page.locator('tr.rec-row', { hasText: 'Version three' });
    await row.waitFor();
    await row.click();
    const dlg = page.locator('dialog.drawer');
    await dlg.locator('#tab-history').click();
    await dlg.locator('tr.version-row').nth(2).waitFor();
    await dlg.locator('tr.version-row').nth(1).locator('button:has-text("Revert")').click();
    await page.click('dialog.modal button:has-text("Revert to this version")');
    const notice = dlg.locator('[data-testid=broken-relations]');
    await notice.waitFor();
    assert.match(await notice.innerText(), new RegExp(other));
    await dlg.locator('tr.version-row').nth(3).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, '21-history-revert.png'), fullPage: true });
    const now = (await server.api('GET', `/api/collections/posts/records/${post.id}`)).body;
    assert.equal(now.title, 'Version two');
    const after = (await server.api('GET', `/api/collections/posts/records/${post.id}/history`)).body.items;
    assert.equal(after.length, history.length + 1);
    assert.equal(after.at(-1).action, 'update');
    await page.keyboard.press('Escape');
  });

  test('the collection editor shows and saves the restore rule', async () => {
    await page.click('.tabs a:has-text("Edit collection")');
    const lock = page.locator('#rule-restoreRule-lock');
    await lock.waitFor();
    assert.equal(await lock.isChecked(), true, 'null = superusers only');
    await lock.uncheck();
    await page.fill('#rule-restoreRule', '@request.auth.id != ""');
    await page.click('#collection-save');
    await page.waitForFunction(() => document.getElementById('toasts').innerText.includes('saved'));
    const coll = (await server.api('GET', '/api/collections/posts')).body;
    assert.equal(coll.restoreRule, '@request.auth.id != ""');
    assert.deepEqual(pageErrors, []);
  });
});
