// Seed chat-app flow (spec/api.md §13) through the official JS SDK.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, sleep } from './harness.mjs';

const T = { timeout: 20_000 };

describe('chat app flow', { timeout: 120_000 }, () => {
  let server;
  let admin;
  let alice; // { pb, record, password }
  let bob;
  const sent = [];

  before(async () => {
    server = await startServer();
    admin = await server.admin();
  });
  after(async () => {
    alice?.pb.realtime.unsubscribe?.();
    await server?.stop();
  });

  test('superuser adds a unique username field to users and enables username login', T, async () => {
    const users = await admin.collections.getOne('users');
    assert.equal(users.type, 'auth');
    assert.deepEqual(users.passwordAuth.identityFields, ['email']);
    assert.ok(!users.fields.some((f) => f.name === 'username'), 'fresh users has no username field');

    // identityFields requires a UNIQUE index on the field
    const noIndex = await expectError(
      () =>
        admin.collections.update('users', {
          fields: [...users.fields, { name: 'username', type: 'text' }],
          passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
        }),
      400,
    );
    assert.equal(noIndex.response.message, 'Failed to update collection.');
    assert.equal(noIndex.response.data.passwordAuth.identityFields.code, 'validation_missing_unique_constraint');
    assert.deepEqual(noIndex.response.data.passwordAuth.identityFields.params, { fieldName: 'username' });

    const updated = await admin.collections.update('users', {
      fields: [...users.fields, { name: 'username', type: 'text', required: true, min: 3, max: 50 }],
      indexes: [...users.indexes, 'CREATE UNIQUE INDEX idx_users_username ON users (username)'],
      passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
      listRule: '',
      viewRule: '',
    });
    assert.deepEqual(updated.passwordAuth.identityFields, ['email', 'username']);
    assert.equal(updated.listRule, '');
    assert.equal(updated.viewRule, '');
    const username = updated.fields.find((f) => f.name === 'username');
    assert.equal(username.type, 'text');
    assert.equal(username.required, true);
    assert.ok(updated.indexes.some((i) => /UNIQUE INDEX.*idx_users_username/i.test(i)));
    // existing fields were kept (PATCH fields replaces the list; we sent them all)
    for (const name of ['name', 'avatar', 'created', 'updated', 'email', 'password']) {
      assert.ok(updated.fields.some((f) => f.name === name), `field ${name} kept`);
    }
  });

  test('superuser creates the messages collection', T, async () => {
    const messages = await admin.collections.create({
      name: 'messages',
      type: 'base',
      listRule: '',
      viewRule: '',
      createRule: '@request.auth.id != "" && user = @request.auth.id',
      fields: [
        { name: 'text', type: 'text', required: true, min: 2, max: 40 },
        { name: 'user', type: 'relation', required: true, collectionId: '_pb_users_auth_', maxSelect: 1 },
        { name: 'created', type: 'autodate', onCreate: true },
        { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
      ],
    });
    assert.equal(messages.name, 'messages');
    assert.equal(messages.type, 'base');
    assert.match(messages.id, /^pbc_\d+$/);
    assert.equal(messages.id, 'pbc_2605467279', 'id = pbc_ + crc32("base"+"messages")');
    assert.equal(messages.listRule, '');
    assert.equal(messages.createRule, '@request.auth.id != "" && user = @request.auth.id');
    assert.equal(messages.updateRule, null);
    assert.equal(messages.deleteRule, null);
    assert.deepEqual(
      messages.fields.map((f) => [f.name, f.type]),
      [
        ['id', 'text'],
        ['text', 'text'],
        ['user', 'relation'],
        ['created', 'autodate'],
        ['updated', 'autodate'],
      ],
    );
    const text = messages.fields.find((f) => f.name === 'text');
    assert.equal(text.min, 2);
    assert.equal(text.max, 40);
    const idField = messages.fields[0];
    assert.equal(idField.primaryKey, true);
    assert.equal(idField.system, true);
    assert.equal(idField.autogeneratePattern, '[a-z0-9]{15}');
  });

  test('a guest signs up through users.create (no email in the response)', T, async () => {
    const pb = server.client();
    const rec = await pb.collection('users').create({
      username: 'alice',
      email: 'alice@example.com',
      password: 'alicepass123',
      passwordConfirm: 'alicepass123',
      name: 'Alice',
    });
    assert.match(rec.id, /^[a-z0-9]{15}$/);
    assert.equal(rec.username, 'alice');
    assert.equal(rec.name, 'Alice');
    assert.equal(rec.collectionName, 'users');
    assert.equal(rec.collectionId, '_pb_users_auth_');
    assert.equal(rec.verified, false);
    assert.equal(rec.emailVisibility, false);
    assert.equal(rec.email, undefined, 'guest creator does not see a hidden email');
    assert.equal(rec.password, undefined);
    assert.equal(rec.tokenKey, undefined);
    assert.equal(pb.authStore.isValid, false, 'create does not log in');
    alice = { pb: null, record: rec, password: 'alicepass123' };

    const bobRec = await pb.collection('users').create({
      username: 'bob',
      email: 'bob@example.com',
      emailVisibility: true,
      password: 'bobpass1234',
      passwordConfirm: 'bobpass1234',
      name: 'Bob',
    });
    assert.equal(bobRec.email, 'bob@example.com', 'emailVisibility:true shows the email');
    bob = { pb: server.client(), record: bobRec, password: 'bobpass1234' };
    await bob.pb.collection('users').authWithPassword('bob', 'bobpass1234');
  });

  test('sign-up validation: duplicate username/email and password mismatch', T, async () => {
    const pb = server.client();
    const dupUsername = await expectError(
      () =>
        pb.collection('users').create({
          username: 'alice',
          email: 'alice2@example.com',
          password: 'alicepass123',
          passwordConfirm: 'alicepass123',
        }),
      400,
    );
    assert.deepEqual(dupUsername.response, {
      data: { username: { code: 'validation_not_unique', message: 'Value must be unique.' } },
      message: 'Failed to create record.',
      status: 400,
    });

    const dupEmail = await expectError(
      () =>
        pb.collection('users').create({
          username: 'alice2',
          email: 'alice@example.com',
          password: 'alicepass123',
          passwordConfirm: 'alicepass123',
        }),
      400,
    );
    assert.deepEqual(dupEmail.response, {
      data: { email: { code: 'validation_not_unique', message: 'Value must be unique.' } },
      message: 'Failed to create record.',
      status: 400,
    });

    // Reference: when several unique indexes are violated at once only ONE error is
    // reported (observed: `username`, not `email`). We only assert "exactly one".
    const dupBoth = await expectError(
      () =>
        pb.collection('users').create({
          username: 'alice',
          email: 'alice@example.com',
          password: 'alicepass123',
          passwordConfirm: 'alicepass123',
        }),
      400,
    );
    const keys = Object.keys(dupBoth.response.data);
    assert.equal(keys.length, 1, JSON.stringify(dupBoth.response));
    assert.ok(['username', 'email'].includes(keys[0]));
    assert.equal(dupBoth.response.data[keys[0]].code, 'validation_not_unique');

    const mismatch = await expectError(
      () =>
        pb.collection('users').create({
          username: 'carol',
          email: 'carol@example.com',
          password: 'carolpass123',
          passwordConfirm: 'other123456',
        }),
      400,
    );
    assert.deepEqual(mismatch.response, {
      data: { passwordConfirm: { code: 'validation_values_mismatch', message: "Values don't match." } },
      message: 'Failed to create record.',
      status: 400,
    });
  });

  test('authWithPassword by username fills the authStore and fires onChange', T, async () => {
    const pb = server.client();
    const changes = [];
    const unsub = pb.authStore.onChange((token, record) => changes.push({ token, record }));
    const res = await pb.collection('users').authWithPassword('alice', 'alicepass123');
    unsub();
    assert.equal(typeof res.token, 'string');
    assert.equal(res.token.split('.').length, 3);
    assert.equal(res.record.id, alice.record.id);
    assert.equal(res.record.email, 'alice@example.com', 'own email is visible');
    assert.equal(pb.authStore.isValid, true);
    assert.equal(pb.authStore.token, res.token);
    assert.equal(pb.authStore.record.id, alice.record.id);
    assert.equal(pb.authStore.isSuperuser, false);
    assert.equal(changes.length, 1);
    assert.equal(changes[0].token, res.token);
    assert.equal(changes[0].record.id, alice.record.id);
    // JWT payload
    const payload = JSON.parse(Buffer.from(res.token.split('.')[1], 'base64url').toString());
    assert.equal(payload.type, 'auth');
    assert.equal(payload.id, alice.record.id);
    assert.equal(payload.collectionId, '_pb_users_auth_');
    assert.equal(payload.refreshable, true);
    assert.ok(payload.exp > Date.now() / 1000 + 86400);
    alice.pb = pb;

    // also by email
    const pb2 = server.client();
    await pb2.collection('users').authWithPassword('alice@example.com', 'alicepass123');
    assert.equal(pb2.authStore.record.username, 'alice');
  });

  test('a user creates a message as themself', T, async () => {
    for (const text of ['hello everyone', 'second message', 'third one']) {
      const msg = await alice.pb.collection('messages').create({ text, user: alice.record.id });
      assert.match(msg.id, /^[a-z0-9]{15}$/);
      assert.equal(msg.text, text);
      assert.equal(msg.user, alice.record.id);
      assert.equal(msg.collectionName, 'messages');
      assert.match(msg.created, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(msg.updated, msg.created);
      sent.push(msg);
      await sleep(5); // distinct `created` millis for the sort test
    }
    const fromBob = await bob.pb.collection('messages').create({ text: 'hi alice', user: bob.record.id }, { expand: 'user' });
    assert.equal(fromBob.expand.user.id, bob.record.id);
    assert.equal(fromBob.expand.user.username, 'bob');
    sent.push(fromBob);
  });

  test('posting as someone else is rejected with 400 and the error envelope', T, async () => {
    const err = await expectError(
      () => alice.pb.collection('messages').create({ text: 'I am bob', user: bob.record.id }),
      400,
    );
    assert.deepEqual(err.response, { data: {}, message: 'Failed to create record.', status: 400 });
    assert.equal(err.message, 'Failed to create record.');
  });

  test('text length validation errors', T, async () => {
    const short = await expectError(
      () => alice.pb.collection('messages').create({ text: 'x', user: alice.record.id }),
      400,
    );
    assert.deepEqual(short.response, {
      data: {
        text: { code: 'validation_min_text_constraint', message: 'Must be at least 2 character(s).', params: { min: 2 } },
      },
      message: 'Failed to create record.',
      status: 400,
    });

    const long = await expectError(
      () => alice.pb.collection('messages').create({ text: 'y'.repeat(41), user: alice.record.id }),
      400,
    );
    assert.deepEqual(long.response, {
      data: {
        text: {
          code: 'validation_max_text_constraint',
          message: 'Must be no more than 40 character(s).',
          params: { max: 40 },
        },
      },
      message: 'Failed to create record.',
      status: 400,
    });

    const empty = await expectError(() => alice.pb.collection('messages').create({ user: alice.record.id }), 400);
    assert.deepEqual(empty.response.data, { text: { code: 'validation_required', message: 'Cannot be blank.' } });

    // exactly at the limits is fine (counted in characters, not bytes)
    const ok = await alice.pb.collection('messages').create({ text: 'é'.repeat(40), user: alice.record.id });
    await admin.collection('messages').delete(ok.id);
  });

  test('getList sorted by created with expand=user', T, async () => {
    const list = await bob.pb.collection('messages').getList(1, 50, { sort: 'created', expand: 'user' });
    assert.equal(list.page, 1);
    assert.equal(list.perPage, 50);
    assert.equal(list.totalItems, sent.length);
    assert.equal(list.totalPages, 1);
    assert.deepEqual(
      list.items.map((m) => m.id),
      sent.map((m) => m.id),
    );
    for (const m of list.items) {
      assert.equal(m.expand.user.id, m.user);
      assert.ok(m.expand.user.username);
      assert.equal(m.expand.user.password, undefined);
      assert.equal(m.expand.user.tokenKey, undefined);
    }
    // bob sees his own email, not alice's (emailVisibility false)
    const aliceMsg = list.items.find((m) => m.user === alice.record.id);
    const bobMsg = list.items.find((m) => m.user === bob.record.id);
    assert.equal(aliceMsg.expand.user.email, undefined);
    assert.equal(bobMsg.expand.user.email, 'bob@example.com');

    const desc = await alice.pb.collection('messages').getList(1, 2, { sort: '-created' });
    assert.deepEqual(
      desc.items.map((m) => m.id),
      sent.slice(-2).reverse().map((m) => m.id),
    );
    assert.equal(desc.totalPages, Math.ceil(sent.length / 2));
    assert.equal(desc.items[0].expand, undefined, 'no expand key without ?expand');

    // guests may read too (listRule "")
    const guest = await server.client().collection('messages').getList(1, 50);
    assert.equal(guest.totalItems, sent.length);
  });

  test('missing record → 404 ClientResponseError', T, async () => {
    const err = await expectError(() => alice.pb.collection('messages').getOne('doesnotexist123'), 404);
    assert.deepEqual(err.response, { data: {}, message: "The requested resource wasn't found.", status: 404 });
  });

  test('authStore.clear() signs out; a guest create is rejected', T, async () => {
    const changes = [];
    alice.pb.authStore.onChange((token, record) => changes.push({ token, record }));
    alice.pb.authStore.clear();
    assert.equal(alice.pb.authStore.isValid, false);
    assert.equal(alice.pb.authStore.token, '');
    assert.equal(alice.pb.authStore.record, null);
    assert.equal(changes.length, 1);
    assert.equal(changes[0].token, '');

    const err = await expectError(
      () => alice.pb.collection('messages').create({ text: 'guest msg', user: alice.record.id }),
      400,
    );
    assert.deepEqual(err.response, { data: {}, message: 'Failed to create record.', status: 400 });

    const count = await admin.collection('messages').getList(1, 1);
    assert.equal(count.totalItems, sent.length, 'nothing was created');
  });
});
