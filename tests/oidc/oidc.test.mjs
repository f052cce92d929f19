// OAuth2 end to end with a real OpenID provider: the certified `oidc-provider` package runs on a
// free loopback port (dev interactions: a login form and a consent page), pocketlog runs with a
// `users` collection configured for the generic `oidc` provider (userinfo + id_token verified
// against the provider's JWKS), and headless Chromium opens a page served by pocketlog
// (pb_public) that calls the official SDK's `pb.collection('users').authWithOAuth2({provider:
// 'oidc'})`. The SDK subscribes to `@oauth2`, opens the popup; the test signs in on the
// provider's pages; the provider redirects to `/api/oauth2-redirect`, pocketlog hands the code
// to the SDK over realtime and the SDK exchanges it. Asserts the signed-in record, the `meta`,
// the `_externalAuths` link, and that a second sign-in reuses the record.
//
//   POCKETLOG_BIN   server binary (default ../../target/debug/pocketlog)
//   CHROMIUM_BIN    browser (default /usr/bin/chromium)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir, copyFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import Provider from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADMIN = { email: 'admin@example.com', password: 'Passw0rd123' };
const CLIENT = { id: 'pocketlog-e2e', secret: 'e2e-client-secret-value' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function serverBin() {
  if (process.env.POCKETLOG_BIN) return path.resolve(process.env.POCKETLOG_BIN);
  return path.resolve(HERE, '../../target/debug/pocketlog');
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function run(bin, args) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function startPocketlog() {
  const bin = serverBin();
  const root = await mkdtemp(path.join(os.tmpdir(), 'oidc-e2e-'));
  const dir = path.join(root, 'pb_data');
  const publicDir = path.join(root, 'pb_public');
  await mkdir(dir, { recursive: true });
  await mkdir(publicDir, { recursive: true });
  // The test page: the official SDK, served by pocketlog itself.
  await copyFile(path.join(HERE, 'node_modules/pocketbase/dist/pocketbase.es.mjs'), path.join(publicDir, 'pocketbase.es.mjs'));
  await writeFile(
    path.join(publicDir, 'index.html'),
    `<!doctype html><meta charset="utf-8"><title>oidc e2e</title>
<script type="module">
import PocketBase from './pocketbase.es.mjs';
window.pb = new PocketBase(location.origin);
window.signIn = async () => {
  const auth = await window.pb.collection('users').authWithOAuth2({ provider: 'oidc' });
  return { id: auth.record.id, email: auth.record.email, verified: auth.record.verified, name: auth.record.name,
           token: auth.token, meta: auth.meta, valid: window.pb.authStore.isValid };
};
window.ready = true;
</script>`,
  );
  await run(bin, ['superuser', 'upsert', ADMIN.email, ADMIN.password, '--dir', dir]);
  const port = await freePort();
  const proc = spawn(bin, ['serve', '--http', `127.0.0.1:${port}`, '--dir', dir, '--publicDir', publicDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { if (stderr.length < 65536) stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(`${url}/api/health`);
      if (res.status === 200) break;
    } catch { /* not up yet */ }
    await sleep(100);
  }
  const login = await (await fetch(`${url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: ADMIN.email, password: ADMIN.password }),
  })).json();
  const api = async (method, p, body) => {
    const res = await fetch(url + p, {
      method, headers: { 'content-type': 'application/json', authorization: login.token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  return {
    url, api, stderr: () => stderr,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function startProvider(redirectUri) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const oidc = new Provider(issuer, {
    clients: [{
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    // Any login the form gets is an account with these claims.
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: true, name: 'Ada Lovelace', preferred_username: id };
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['oidc-e2e-cookie-key'] },
  });
  const server = oidc.listen(port, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { issuer, stop: () => new Promise((resolve) => server.close(resolve)) };
}

// Runs `window.signIn()` and answers the provider's pages in the popup as they come (the login
// form, the consent page; neither when the provider remembers the session and the grant).
async function signInThroughPopup(page, login) {
  const popupPromise = page.waitForEvent('popup');
  const done = page.evaluate(() => window.signIn()).then((r) => ({ r }), (e) => ({ e }));
  const popup = await popupPromise;
  if (process.env.OIDC_DEBUG) {
    popup.on('framenavigated', (f) => console.error('popup at', f.url()));
    popup.on('load', async () => console.error('popup html', (await popup.content().catch(() => '')).replace(/<style>[\s\S]*?<\/style>/, '').slice(0, 1500)));
  }
  for (let steps = 0; steps < 10; steps++) {
    const form = popup
      .waitForSelector('input[name=login], input[name=prompt][value=consent]', { state: 'attached', timeout: 30_000 })
      .then((h) => ({ h }), () => ({}));
    const step = await Promise.race([done, form]);
    if (step.r) return step.r;
    if (step.e) throw step.e;
    if (!step.h) break;
    if (await popup.$('input[name=login]').catch(() => null)) {
      await popup.fill('input[name=login]', login);
      await popup.fill('input[name=password]', 'anything');
      await popup.click('button[type=submit]');
    } else {
      await popup.click('button[type=submit]');
    }
    await sleep(200);
  }
  const last = await done;
  if (last.e) throw last.e;
  return last.r;
}

test('authWithOAuth2 popup flow against a real OpenID provider', { timeout: 180_000 }, async () => {
  const pl = await startPocketlog();
  const op = await startProvider(`${pl.url}/api/oauth2-redirect`);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', headless: true });
  try {
    const patch = await pl.api('PATCH', '/api/collections/users', {
      oauth2: {
        enabled: true,
        mappedFields: { id: '', name: 'name', username: '', avatarURL: '' },
        providers: [{
          name: 'oidc', clientId: CLIENT.id, clientSecret: CLIENT.secret, displayName: 'Test OP',
          authURL: `${op.issuer}/auth`, tokenURL: `${op.issuer}/token`, userInfoURL: `${op.issuer}/me`,
          pkce: true, extra: { jwksURL: `${op.issuer}/jwks`, issuers: [op.issuer] },
        }],
      },
    });
    assert.equal(patch.status, 200, JSON.stringify(patch.body));
    assert.ok(!JSON.stringify(patch.body).includes(CLIENT.secret), 'the secret is never shown');

    const page = await browser.newPage();
    if (process.env.OIDC_DEBUG) page.on('console', (m) => console.error('page:', m.text()));
    await page.goto(`${pl.url}/`);
    await page.waitForFunction(() => window.ready === true);

    const first = await signInThroughPopup(page, 'ada');
    assert.equal(first.email, 'ada@example.com');
    assert.equal(first.verified, true);
    assert.equal(first.name, 'Ada Lovelace');
    assert.equal(first.valid, true);
    assert.equal(first.meta.isNew, true);
    assert.equal(first.meta.id, 'ada');
    assert.equal(first.meta.rawUser.email, 'ada@example.com');
    assert.ok(first.meta.accessToken.length > 0);

    const links = await pl.api('GET', '/api/collections/_externalAuths/records');
    assert.equal(links.body.totalItems, 1);
    assert.equal(links.body.items[0].provider, 'oidc');
    assert.equal(links.body.items[0].providerId, 'ada');
    assert.equal(links.body.items[0].recordRef, first.id);

    // Again (the provider remembers the session and the consent): the same record.
    await page.evaluate(() => window.pb.authStore.clear());
    const again = await signInThroughPopup(page, 'ada');
    assert.equal(again.id, first.id);
    assert.equal(again.meta.isNew, false);
    const users = await pl.api('GET', '/api/collections/users/records');
    assert.equal(users.body.totalItems, 1);
  } finally {
    await browser.close();
    await op.stop();
    await pl.stop();
  }
});
