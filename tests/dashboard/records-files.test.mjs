// Browser tests of the records screens (#15, #16, #17): every field shown in the records table,
// relation columns as chips with the related record's display field, file thumbnails; the record
// editor's file field (upload one or many, previews, download links with a file token for
// protected files, remove); the rule editors' autocomplete; the auth collection options.
// One server and one page for the file; each test asserts what the user sees and the API state.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { TestServer, launchBrowser, login, pngBytes, ARTIFACTS } from './harness.mjs';

const T = 15_000;

describe('records, files, rules and auth options', () => {
  let server;
  let browser;
  let page;
  let bob;
  let post;
  const pageErrors = [];
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const toastText = () => page.locator('#toasts').innerText();

  /** A multipart record write as the superuser. */
  async function upload(method, p, form) {
    await server.api('GET', '/api/health');
    const res = await fetch(server.url + p, { method, headers: { authorization: server.token }, body: form });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  }

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await new TestServer().start();
    const users = (await server.api('GET', '/api/collections/users')).body;
    let res = await server.api('POST', '/api/collections', {
      name: 'posts', type: 'base', listRule: '', viewRule: '',
      fields: [
        { name: 'title', type: 'text' },
        { name: 'author', type: 'relation', collectionId: users.id, maxSelect: 1 },
        { name: 'cover', type: 'file', maxSelect: 1, maxSize: 5_000_000 },
        { name: 'docs', type: 'file', maxSelect: 5, maxSize: 5_000_000, protected: true },
        { name: 'created', type: 'autodate', onCreate: true },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    res = await server.api('POST', '/api/collections/users/records', {
      email: 'bob@example.com', name: 'Bob Builder', password: 'bobpass1234', passwordConfirm: 'bobpass1234',
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    bob = res.body;
    const form = new FormData();
    form.append('title', 'First post');
    form.append('author', bob.id);
    form.append('cover', new Blob([pngBytes(200, 150)], { type: 'image/png' }), 'cover.png');
    form.append('docs', new Blob(['hello notes'], { type: 'text/plain' }), 'notes.txt');
    post = await upload('POST', '/api/collections/posts/records', form);
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

  test('records table: every field is a column, relations are chips with the display field, files are thumbnails', async () => {
    await page.click('.coll-list a[href="#/c/posts"]');
    const row = page.locator('tr.rec-row', { hasText: 'First post' });
    await row.waitFor();
    const headers = (await page.locator('table.records th').allInnerTexts()).map((t) => t.replace(/[▲▼]/g, '').trim());
    assert.deepEqual(headers, ['id', 'title', 'author', 'cover', 'docs', 'created']);
    // the relation shows Bob's name (users have no presentable field: "name" is the first fallback)
    const chip = row.locator('.rel-chip');
    assert.equal(await chip.innerText(), 'Bob Builder');
    assert.equal(await chip.getAttribute('data-id'), bob.id);
    // the cover is a real 100x100 thumbnail; the protected text file is a name chip
    const img = row.locator('img.thumb');
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    assert.match(await img.getAttribute('src'), /\/api\/files\/[^/]+\/[^/]+\/cover_\w+\.png\?thumb=100x100/);
    assert.deepEqual(await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]), [100, 100]);
    assert.match(await row.locator('.file-chip').innerText(), /^notes_\w+\.txt$/);
    await shot('30-records-relations-files');
  });

  test('record editor: upload several files, preview, download with a file token, remove one, replace the single file', async () => {
    await page.locator('tr.rec-row', { hasText: 'First post' }).click();
    const dlg = page.locator('dialog.drawer');
    // stored files: the cover's preview and download links (docs are protected: the link has a token)
    const coverItem = dlg.locator('ul[aria-label="cover stored files"] li.file-item');
    await coverItem.locator('img.thumb').waitFor();
    const docItem = dlg.locator('ul[aria-label="docs stored files"] li.file-item');
    assert.equal(await docItem.count(), 1);
    await page.waitForFunction(() => /token=/.test(document.querySelector('ul[aria-label="docs stored files"] a.file-download')?.getAttribute('href') || ''));
    const href = await docItem.locator('a.file-download').getAttribute('href');
    assert.match(href, /download=1/);
    const fetched = await page.evaluate(async (u) => { const r = await fetch(u); return [r.status, await r.text(), r.headers.get('content-disposition')]; }, href);
    assert.equal(fetched[0], 200);
    assert.equal(fetched[1], 'hello notes');
    assert.match(fetched[2], /attachment/);
    const bare = await page.evaluate(async (u) => (await fetch(u)).status, href.replace(/[?&]token=[^&]+/, ''));
    assert.equal(bare, 404, 'a protected file needs the token');

    // add two docs (multiple input), see them listed with a preview for the image
    await dlg.locator('input[type=file][name=docs]').setInputFiles([
      { name: 'plan.txt', mimeType: 'text/plain', buffer: Buffer.from('the plan') },
      { name: 'diagram.png', mimeType: 'image/png', buffer: pngBytes(40, 40) },
    ]);
    const picked = dlg.locator('ul[aria-label="docs files to upload"] li');
    assert.equal(await picked.count(), 2);
    await picked.nth(1).locator('img.thumb').waitFor();
    assert.equal(await dlg.locator('input[type=file][name=docs]').getAttribute('multiple'), '');
    assert.equal(await dlg.locator('input[type=file][name=cover]').getAttribute('multiple'), null);
    await shot('31-record-files-picked');
    await dlg.locator('#record-save').click();
    await dlg.waitFor({ state: 'detached' });
    let rec = (await server.api('GET', `/api/collections/posts/records/${post.id}`)).body;
    assert.equal(rec.docs.length, 3);
    assert.ok(rec.docs.some((n) => /^plan_\w+\.txt$/.test(n)));
    assert.ok(rec.docs.some((n) => /^diagram_\w+\.png$/.test(n)));
    assert.equal(rec.cover, post.cover, 'the cover is kept');

    // remove notes.txt, replace the cover
    await page.locator('tr.rec-row', { hasText: 'First post' }).click();
    const notes = dlg.locator('ul[aria-label="docs stored files"] li.file-item', { hasText: 'notes_' });
    await notes.locator('button.file-remove').click();
    assert.match(await notes.getAttribute('class'), /removed/);
    await dlg.locator('input[type=file][name=cover]').setInputFiles({ name: 'new-cover.png', mimeType: 'image/png', buffer: pngBytes(120, 120) });
    await dlg.locator('#record-save').click();
    await dlg.waitFor({ state: 'detached' });
    rec = (await server.api('GET', `/api/collections/posts/records/${post.id}`)).body;
    assert.equal(rec.docs.length, 2);
    assert.ok(!rec.docs.some((n) => n.startsWith('notes_')), 'notes.txt was removed');
    assert.match(rec.cover, /^new_cover_\w+\.png$/);
    await page.locator('tr.rec-row img.thumb[src*="new_cover_"]').waitFor();
    assert.match(await toastText(), /saved/i);
  });

  test('rule editors suggest fields, @request.*, @collection.* and modifiers', async () => {
    await page.click('.coll-list a[href="#/c/posts"]');
    await page.click('.tabs a:has-text("Edit collection")');
    await page.click('#rule-updateRule-lock');
    const rule = page.locator('#rule-updateRule');
    const options = page.locator('.rule:has(#rule-updateRule) .ac-list li');
    await rule.click();
    await rule.pressSequentially('@request.au');
    await options.first().waitFor();
    assert.deepEqual(await options.allInnerTexts(), ['@request.auth.']);
    await rule.press('Enter');
    assert.equal(await rule.inputValue(), '@request.auth.');
    // the auth collections' fields follow
    await page.waitForFunction(() => [...document.querySelectorAll('.rule .ac-list li')].some((li) => li.innerText === '@request.auth.email'));
    await rule.pressSequentially('i');
    assert.deepEqual(await options.allInnerTexts(), ['@request.auth.id']);
    await rule.press('Tab');
    assert.equal(await rule.inputValue(), '@request.auth.id');
    // the collection's own fields, then the related collection's through the relation
    await rule.pressSequentially(' = aut');
    assert.deepEqual(await options.allInnerTexts(), ['author']);
    await rule.press('Enter');
    await rule.pressSequentially('.na');
    assert.deepEqual(await options.allInnerTexts(), ['author.name']);
    await rule.press('Enter');
    // Escape closes the list
    await rule.pressSequentially(' && ');
    await rule.pressSequentially('@');
    await options.first().waitFor();
    await rule.press('Escape');
    await page.locator('.rule:has(#rule-updateRule) .ac-list').waitFor({ state: 'hidden' });
    await rule.press('Backspace');
    // modifiers after a colon, @request.body fields, @collection names
    await rule.pressSequentially('@request.body.tit');
    assert.deepEqual(await options.allInnerTexts(), ['@request.body.title']);
    await rule.press('Enter');
    await rule.pressSequentially(':is');
    assert.deepEqual(await options.allInnerTexts(), ['@request.body.title:isset']);
    await rule.press('Enter');
    await rule.pressSequentially(' = false && @collection.po');
    assert.deepEqual(await options.allInnerTexts(), ['@collection.posts.']);
    await rule.press('ArrowDown');
    await rule.press('Enter');
    await rule.pressSequentially('ti');
    assert.deepEqual(await options.allInnerTexts(), ['@collection.posts.title']);
    await rule.press('Enter');
    await rule.pressSequentially(' != ""');
    await shot('32-rule-autocomplete');
    const expected = '@request.auth.id = author.name && @request.body.title:isset = false && @collection.posts.title != ""';
    assert.equal(await rule.inputValue(), expected);
    await page.click('#collection-save');
    await page.waitForURL(/#\/c\/posts$/);
    const c = (await server.api('GET', '/api/collections/posts')).body;
    assert.equal(c.updateRule, expected);
  });

  test('auth collection options: password, OTP, MFA, OAuth2 (write-only secret), templates, token durations, login alert', async () => {
    await page.click('.coll-list a[href="#/c/users"]');
    await page.click('.tabs a:has-text("Edit collection")');
    const open = async (id) => { if (!(await page.locator(`#${id}`).evaluate((d) => d.open))) await page.click(`#${id} > summary`); };
    await open('opt-password');
    await page.fill('#identity-fields', 'email');
    await open('opt-otp');
    await page.check('#otp-enabled');
    await page.fill('#otp-duration', '300');
    await page.fill('#otp-length', '6');
    await page.fill('#otp-template-subject', 'Your {APP_NAME} code');
    await open('opt-mfa');
    await page.check('#mfa-enabled');
    await page.fill('#mfa-duration', '900');
    await page.locator('#mfa-rule').pressSequentially('verif');
    await page.locator('#opt-mfa .ac-list li', { hasText: 'verified' }).waitFor();
    await page.locator('#mfa-rule').press('Enter');
    await page.locator('#mfa-rule').pressSequentially(' = true');
    await open('opt-oauth2');
    await page.check('#oauth2-enabled');
    await page.selectOption('#oauth2-add-name', 'github');
    await page.click('#oauth2-add');
    await page.fill('#oauth2-github-client-id', 'gh-client');
    await page.fill('#oauth2-github-secret', 'gh-secret-1');
    await page.fill('#oauth2-map-name', 'name');
    await open('opt-templates');
    await page.fill('#tpl-verificationTemplate-subject', 'Welcome to {APP_NAME}');
    await open('opt-tokens');
    await page.fill('#token-authToken', '3600');
    await page.fill('#token-fileToken', '240');
    await open('opt-alert');
    await page.uncheck('#alert-enabled');
    await shot('33-auth-options');
    await page.click('#collection-save');
    await page.waitForURL(/#\/c\/users$/);
    let c = (await server.api('GET', '/api/collections/users')).body;
    assert.deepEqual(c.passwordAuth, { enabled: true, identityFields: ['email'] });
    assert.equal(c.otp.enabled, true);
    assert.equal(c.otp.duration, 300);
    assert.equal(c.otp.length, 6);
    assert.equal(c.otp.emailTemplate.subject, 'Your {APP_NAME} code');
    assert.deepEqual(c.mfa, { enabled: true, duration: 900, rule: 'verified = true' });
    assert.equal(c.oauth2.enabled, true);
    assert.equal(c.oauth2.providers.length, 1);
    assert.equal(c.oauth2.providers[0].name, 'github');
    assert.equal(c.oauth2.providers[0].clientId, 'gh-client');
    assert.equal(c.oauth2.mappedFields.name, 'name');
    assert.equal(c.verificationTemplate.subject, 'Welcome to {APP_NAME}');
    assert.equal(c.authToken.duration, 3600);
    assert.equal(c.fileToken.duration, 240);
    assert.equal(c.authAlert.enabled, false);

    // editing the provider without retyping the secret keeps it; a new provider needs one
    await page.click('.tabs a:has-text("Edit collection")');
    await open('opt-oauth2');
    assert.equal(await page.inputValue('#oauth2-github-secret'), '');
    await page.fill('#oauth2-github-client-id', 'gh-client-2');
    await page.selectOption('#oauth2-add-name', 'gitlab');
    await page.click('#oauth2-add');
    await page.fill('#oauth2-gitlab-client-id', 'gl-client');
    await page.click('#collection-save');
    await page.locator('main .error-box').waitFor();
    assert.match(await page.locator('#opt-oauth2[open] .provider[data-name=gitlab] .field-error').innerText(), /Cannot be blank/);
    c = (await server.api('GET', '/api/collections/users')).body;
    assert.equal(c.oauth2.providers.length, 1, 'nothing saved with a provider missing its secret');
    await page.click('.provider[data-name=gitlab] button:has-text("Remove")');
    // the PATCH carries no clientSecret for the provider whose secret was not retyped
    const [patch] = await Promise.all([
      page.waitForRequest((r) => r.method() === 'PATCH' && r.url().includes('/api/collections/')),
      page.click('#collection-save'),
    ]);
    assert.equal(JSON.parse(patch.postData()).oauth2.providers[0].clientSecret, undefined);
    await page.waitForURL(/#\/c\/users$/);
    c = (await server.api('GET', '/api/collections/users')).body;
    assert.deepEqual(c.oauth2.providers.map((p) => [p.name, p.clientId]), [['github', 'gh-client-2']]);
    // MFA applies to the records matching its rule: a verified user's password login answers
    // 401 with an mfaId (the second factor is still to come)
    assert.equal((await server.api('PATCH', `/api/collections/users/records/${bob.id}`, { verified: true })).status, 200);
    const res = await fetch(`${server.url}/api/collections/users/auth-with-password`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identity: 'bob@example.com', password: 'bobpass1234' }),
    });
    const body = await res.json();
    assert.equal(res.status, 401, JSON.stringify(body));
    assert.ok(body.mfaId, JSON.stringify(body));
    assert.deepEqual(pageErrors, []);
  });
});
