// A server restart in the middle of the chat flow loses nothing.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer, expectError, signUp, loginAs, seedChatSchema, sleep, pocketlogOnly } from './harness.mjs';

const T = { timeout: 60_000 };

describe('restart durability', { timeout: 240_000 }, () => {
  let server;
  let admin;
  let aliceU;
  let bobU;
  let alice;
  let bob;
  const sent = [];

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await seedChatSchema(admin, { textMin: 1, textMax: 200 });
    await admin.settings.update({ meta: { appName: 'ChatApp' }, batch: { enabled: true } });
    aliceU = await signUp(server, 'alice');
    bobU = await signUp(server, 'bob', { emailVisibility: true });
    alice = await loginAs(server, aliceU);
    bob = await loginAs(server, bobU);
  });
  after(async () => {
    await server?.stop();
  });

  const post = async (pb, u, text) => {
    const m = await pb.collection('messages').create({ text, user: u.record.id });
    sent.push(m);
    await sleep(3);
    return m;
  };

  async function assertEverythingThere() {
    // schema
    const users = await admin.collections.getOne('users');
    assert.deepEqual(users.passwordAuth.identityFields, ['email', 'username']);
    assert.ok(users.fields.some((f) => f.name === 'username'));
    assert.ok(users.indexes.some((i) => /idx_users_username/.test(i)));
    const messages = await admin.collections.getOne('messages');
    assert.equal(messages.createRule, '@request.auth.id != "" && user = @request.auth.id');
    // settings
    const settings = await admin.settings.getAll();
    assert.equal(settings.meta.appName, 'ChatApp');
    assert.equal(settings.batch.enabled, true);
    // users
    const list = await admin.collection('users').getFullList({ sort: 'username' });
    assert.deepEqual(
      list.map((u) => [u.id, u.username, u.email]),
      [
        [aliceU.record.id, 'alice', 'alice@example.com'],
        [bobU.record.id, 'bob', 'bob@example.com'],
      ],
    );
    // messages, same content and order, with expand
    const msgs = await bob.collection('messages').getList(1, 50, { sort: 'created', expand: 'user' });
    assert.equal(msgs.totalItems, sent.length);
    assert.deepEqual(
      msgs.items.map(({ expand, ...m }) => m),
      sent,
    );
    for (const m of msgs.items) assert.equal(m.expand.user.id, m.user);
  }

  test('chat flow, graceful restart (SIGTERM), everything is still there', T, async () => {
    await post(alice, aliceU, 'hello before restart');
    await post(bob, bobU, 'hi alice');
    const aliceToken = alice.authStore.token;
    const adminToken = admin.authStore.token;

    await server.restart();
    assert.equal(server.lastExit, 0, 'SIGTERM → graceful shutdown, exit code 0');

    // tokens issued before the restart are still valid
    assert.equal(alice.authStore.token, aliceToken);
    assert.equal(alice.authStore.isValid, true);
    assert.equal(admin.authStore.token, adminToken);
    await assertEverythingThere();
    const refreshed = await alice.collection('users').authRefresh();
    assert.equal(refreshed.record.id, aliceU.record.id);
    assert.equal(refreshed.record.username, 'alice');

    // the flow continues
    await post(alice, aliceU, 'still here after restart');
    const rejected = await expectError(
      () => alice.collection('messages').create({ text: 'as bob', user: bobU.record.id }),
      400,
    );
    assert.deepEqual(rejected.response, { data: {}, message: 'Failed to create record.', status: 400 });
    await assertEverythingThere();
  });

  test('a write acknowledged right before the restart survives', T, async () => {
    await post(bob, bobU, 'last words');
    await server.restart(); // SIGTERM immediately after the 200
    await assertEverythingThere();

    // a batch acknowledged right before the restart, too
    const b = alice.createBatch();
    b.collection('messages').create({ text: 'batch 1', user: aliceU.record.id });
    b.collection('messages').create({ text: 'batch 2', user: aliceU.record.id });
    const res = await b.send();
    sent.push(res[0].body, res[1].body);
    sent.sort((x, y) => (x.created < y.created ? -1 : x.created > y.created ? 1 : 0));
    await server.restart();
    const got = await bob.collection('messages').getFullList({ filter: 'text ~ "batch"' });
    assert.deepEqual(got.map((m) => m.text).sort(), ['batch 1', 'batch 2']);
    // restore insertion order for the shared assertions (batch items may share a millisecond)
    const all = await bob.collection('messages').getFullList({ sort: 'created,@rowid' });
    sent.length = 0;
    sent.push(...all);
    await assertEverythingThere();
  });

  test('auth state changes before the restart persist (password change, unique username)', T, async () => {
    const oldToken = bob.authStore.token;
    await bob.collection('users').update(bobU.record.id, {
      oldPassword: bobU.password,
      password: 'bobnewpass123',
      passwordConfirm: 'bobnewpass123',
    });
    await server.restart();

    const stale = server.client();
    stale.authStore.save(oldToken, null);
    await expectError(() => stale.collection('users').authRefresh(), 401);
    await expectError(() => server.client().collection('users').authWithPassword('bob', bobU.password), 400);
    bob = server.client();
    await bob.collection('users').authWithPassword('bob', 'bobnewpass123');
    bobU = { ...bobU, password: 'bobnewpass123' };

    const dup = await expectError(
      () =>
        server.client().collection('users').create({
          username: 'alice',
          email: 'other@example.com',
          password: 'whatever123',
          passwordConfirm: 'whatever123',
        }),
      400,
    );
    assert.equal(dup.response.data.username.code, 'validation_not_unique');
    await assertEverythingThere();
  });

  test('acknowledged writes survive a crash (SIGKILL)', T, async () => {
    await post(alice, aliceU, 'written just before the crash');
    await admin.collections.create({ name: 'after_crash_schema', fields: [{ name: 'x', type: 'text' }] });
    await server.restart({ signal: 'SIGKILL' });
    assert.equal(server.lastExit, 'SIGKILL');
    assert.equal((await admin.collections.getOne('after_crash_schema')).name, 'after_crash_schema');
    await assertEverythingThere();
    // the token is still valid after the crash
    const r = await alice.collection('users').authRefresh();
    assert.equal(r.record.id, aliceU.record.id);
  });

  // DESIGN.md: "A single process owns a data dir (an OS file lock); a second `serve` on the same
  // dir fails with a clear message." Reference PocketBase happily starts a second server on the
  // same dir (observed), hence pocketlog-only.
  test('a second serve on the same data dir is refused', { timeout: 20_000, skip: pocketlogOnly }, async () => {
    const p = spawn(server.bin, ['serve', '--http', '127.0.0.1:0', '--dir', server.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    let timer;
    const code = await Promise.race([
      new Promise((r) => p.on('exit', (c, sig) => r(c ?? sig))),
      new Promise((r) => {
        timer = setTimeout(() => r('still running'), 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (code === 'still running') p.kill('SIGKILL');
    assert.notEqual(code, 'still running', `second serve kept running; output: ${out}`);
    assert.notEqual(code, 0);
    assert.ok(out.trim().length > 0, 'it says why');
    // the first server is unaffected
    await assertEverythingThere();
  });
});
