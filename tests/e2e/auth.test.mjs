// Auth: password login, refresh, token invalidation, password change, email visibility,
// superuser login, auth-methods.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  expectError,
  signUp,
  loginAs,
  seedChatSchema,
  sleep,
  SUPERUSER_EMAIL,
  SUPERUSER_PASSWORD,
} from './harness.mjs';

const T = { timeout: 20_000 };
const AUTH_FAILED = { data: {}, message: 'Failed to authenticate.', status: 400 };
const NEED_AUTH = { data: {}, message: 'The request requires valid record authorization token.', status: 401 };
const NOT_ALLOWED = { data: {}, message: 'The authorized record is not allowed to perform this action.', status: 403 };

const payloadOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());

describe('auth', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let aliceU;
  let bobU;
  let carolU;

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await seedChatSchema(admin);
    aliceU = await signUp(server, 'alice'); // emailVisibility false
    bobU = await signUp(server, 'bob', { emailVisibility: true });
    carolU = await signUp(server, 'carol');
    // a collection only authenticated users can list
    await admin.collections.create({
      name: 'members_only',
      listRule: '@request.auth.id != ""',
      viewRule: '@request.auth.id != ""',
      fields: [{ name: 'title', type: 'text' }],
    });
    await admin.collection('members_only').create({ title: 'secret club' });
  });
  after(async () => {
    await server?.stop();
  });

  test('wrong password / unknown identity → 400 Failed to authenticate.', T, async () => {
    const pb = server.client();
    const wrong = await expectError(() => pb.collection('users').authWithPassword('alice', 'wrongpass123'), 400);
    assert.deepEqual(wrong.response, AUTH_FAILED);
    const unknown = await expectError(() => pb.collection('users').authWithPassword('nobody', 'whatever123'), 400);
    assert.deepEqual(unknown.response, AUTH_FAILED);
    const unknownEmail = await expectError(
      () => pb.collection('users').authWithPassword('nobody@example.com', 'whatever123'),
      400,
    );
    assert.deepEqual(unknownEmail.response, AUTH_FAILED);
    assert.equal(pb.authStore.isValid, false);
  });

  test('missing identity/password → validation errors', T, async () => {
    const res = await server.fetch('/api/collections/users/auth-with-password', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      data: {
        identity: { code: 'validation_required', message: 'Cannot be blank.' },
        password: { code: 'validation_required', message: 'Cannot be blank.' },
      },
      message: 'An error occurred while validating the submitted data.',
      status: 400,
    });
    // (the SDK's `options.body` replaces identity/password, so send these raw)
    const authWith = (body) =>
      server.client().send('/api/collections/users/auth-with-password', { method: 'POST', body });
    const badField = await expectError(
      () => authWith({ identity: 'alice', password: aliceU.password, identityField: 'name' }),
      400,
    );
    assert.equal(badField.response.message, 'An error occurred while validating the submitted data.');
    assert.equal(badField.response.data.identityField.code, 'validation_in_invalid');
    // explicit identityField works, and restricts the lookup to that field
    const ok = await authWith({ identity: 'alice', password: aliceU.password, identityField: 'username' });
    assert.equal(ok.record.id, aliceU.record.id);
    const wrongField = await expectError(
      () => authWith({ identity: 'alice', password: aliceU.password, identityField: 'email' }),
      400,
    );
    assert.deepEqual(wrongField.response, AUTH_FAILED);
  });

  test('auth endpoints on a non-auth collection → 404', T, async () => {
    const err = await expectError(() => server.client().collection('messages').authWithPassword('a', 'b'), 404);
    assert.deepEqual(err.response, { data: {}, message: 'Missing or invalid auth collection context.', status: 404 });
    const methods = await expectError(() => server.client().collection('messages').listAuthMethods(), 404);
    assert.equal(methods.response.message, 'Missing or invalid auth collection context.');
  });

  test('authRefresh returns a fresh token and record', T, async () => {
    const pb = await loginAs(server, aliceU);
    const oldToken = pb.authStore.token;
    await sleep(1100); // exp has 1 s resolution: make sure the new token differs
    const res = await pb.collection('users').authRefresh();
    assert.equal(res.record.id, aliceU.record.id);
    assert.equal(res.record.email, aliceU.email);
    assert.notEqual(res.token, oldToken);
    assert.ok(payloadOf(res.token).exp > payloadOf(oldToken).exp);
    assert.equal(pb.authStore.token, res.token);
    // the old token is still valid (no refresh-token rotation)
    const other = server.client();
    other.authStore.save(oldToken, null);
    const again = await other.collection('users').authRefresh();
    assert.equal(again.record.id, aliceU.record.id);
    // expand works on auth responses
    const expanded = await pb.collection('users').authRefresh({ fields: 'token,record.id' });
    assert.deepEqual(Object.keys(expanded).sort(), ['record', 'token']);
    assert.deepEqual(Object.keys(expanded.record), ['id']);
  });

  test('authRefresh: guest → 401, other collection token → 403', T, async () => {
    const guest = await expectError(() => server.client().collection('users').authRefresh(), 401);
    assert.deepEqual(guest.response, NEED_AUTH);
    const alice = await loginAs(server, aliceU);
    const cross = await expectError(() => alice.collection('_superusers').authRefresh(), 403);
    assert.deepEqual(cross.response, {
      data: {},
      message: 'The request requires auth record from users collection.',
      status: 403,
    });
  });

  test('garbage / foreign tokens are treated as guest, Bearer prefix accepted', T, async () => {
    const guestList = async (authorization) => {
      const res = await server.fetch('/api/collections/members_only/records', {
        headers: authorization ? { Authorization: authorization } : {},
      });
      assert.equal(res.status, 200);
      return (await res.json()).totalItems;
    };
    assert.equal(await guestList(null), 0);
    assert.equal(await guestList('garbage.token.value'), 0);
    const alice = await loginAs(server, aliceU);
    assert.equal(await guestList(alice.authStore.token), 1);
    assert.equal(await guestList(`Bearer ${alice.authStore.token}`), 1);
    // tampered signature
    const t = alice.authStore.token;
    assert.equal(await guestList(t.slice(0, -3) + (t.endsWith('aaa') ? 'bbb' : 'aaa')), 0);
  });

  test('password change requires oldPassword and invalidates old tokens', T, async () => {
    const pb = await loginAs(server, carolU);
    const oldToken = pb.authStore.token;
    const id = carolU.record.id;

    const missing = await expectError(
      () => pb.collection('users').update(id, { password: 'newcarol1234', passwordConfirm: 'newcarol1234' }),
      400,
    );
    assert.deepEqual(missing.response, {
      data: { oldPassword: { code: 'validation_required', message: 'Cannot be blank.' } },
      message: 'Failed to update record.',
      status: 400,
    });
    const wrongOld = await expectError(
      () =>
        pb.collection('users').update(id, {
          oldPassword: 'notmypass123',
          password: 'newcarol1234',
          passwordConfirm: 'newcarol1234',
        }),
      400,
    );
    assert.deepEqual(wrongOld.response, {
      data: { oldPassword: { code: 'validation_invalid_old_password', message: 'Missing or invalid old password.' } },
      message: 'Failed to update record.',
      status: 400,
    });
    const mismatch = await expectError(
      () =>
        pb.collection('users').update(id, {
          oldPassword: carolU.password,
          password: 'newcarol1234',
          passwordConfirm: 'different123',
        }),
      400,
    );
    assert.equal(mismatch.response.data.passwordConfirm.code, 'validation_values_mismatch');

    // still the old password
    await loginAs(server, carolU);

    const updated = await pb.collection('users').update(id, {
      oldPassword: carolU.password,
      password: 'newcarol1234',
      passwordConfirm: 'newcarol1234',
    });
    assert.equal(updated.id, id);
    assert.equal(updated.password, undefined);

    // the old token is dead: auth-refresh → 401, other requests → guest
    const stale = server.client();
    stale.authStore.save(oldToken, null);
    const refresh = await expectError(() => stale.collection('users').authRefresh(), 401);
    assert.deepEqual(refresh.response, NEED_AUTH);
    const asGuest = await stale.collection('members_only').getList(1, 10);
    assert.equal(asGuest.totalItems, 0);

    // old password no longer works, the new one does
    const oldLogin = await expectError(
      () => server.client().collection('users').authWithPassword('carol', carolU.password),
      400,
    );
    assert.deepEqual(oldLogin.response, AUTH_FAILED);
    const fresh = server.client();
    await fresh.collection('users').authWithPassword('carol', 'newcarol1234');
    assert.equal((await fresh.collection('members_only').getList(1, 10)).totalItems, 1);
    carolU = { ...carolU, password: 'newcarol1234' };
  });

  test('non-manager cannot change own email or verified via update', T, async () => {
    const pb = await loginAs(server, aliceU);
    const email = await expectError(
      () => pb.collection('users').update(aliceU.record.id, { email: 'alice-new@example.com' }),
      400,
    );
    assert.deepEqual(email.response, {
      data: { email: { code: 'validation_values_mismatch', message: "Values don't match." } },
      message: 'Failed to update record.',
      status: 400,
    });
    const verified = await expectError(() => pb.collection('users').update(aliceU.record.id, { verified: true }), 400);
    assert.equal(verified.response.data.verified.code, 'validation_values_mismatch');
    // superuser can
    const r = await admin.collection('users').update(aliceU.record.id, { verified: true });
    assert.equal(r.verified, true);
    // updating someone else's record fails the users updateRule (id = @request.auth.id) → 404
    const other = await expectError(() => pb.collection('users').update(bobU.record.id, { name: 'x' }), 404);
    assert.equal(other.response.message, "The requested resource wasn't found.");
  });

  test('emailVisibility hides emails from other users', T, async () => {
    const carol = await loginAs(server, carolU);
    const list = await carol.collection('users').getFullList({ sort: 'username' });
    const byName = Object.fromEntries(list.map((u) => [u.username, u]));
    assert.equal(byName.alice.email, undefined, 'alice: emailVisibility false');
    assert.equal(byName.alice.emailVisibility, false);
    assert.equal(byName.bob.email, 'bob@example.com', 'bob: emailVisibility true');
    assert.equal(byName.carol.email, 'carol@example.com', 'own email always visible');
    assert.equal((await carol.collection('users').getOne(aliceU.record.id)).email, undefined);

    const guest = await server.client().collection('users').getOne(aliceU.record.id);
    assert.equal(guest.email, undefined);

    const asAdmin = await admin.collection('users').getOne(aliceU.record.id);
    assert.equal(asAdmin.email, 'alice@example.com', 'superuser sees all emails');

    // filtering by a hidden email is not possible for others
    const byEmail = await carol.collection('users').getList(1, 10, { filter: 'email = "alice@example.com"' });
    assert.equal(byEmail.totalItems, 0);

    // alice opts in
    const alice = await loginAs(server, aliceU);
    const updated = await alice.collection('users').update(aliceU.record.id, { emailVisibility: true });
    assert.equal(updated.emailVisibility, true);
    assert.equal(alice.authStore.record.emailVisibility, true, 'SDK merged the update into authStore');
    assert.equal((await carol.collection('users').getOne(aliceU.record.id)).email, 'alice@example.com');
  });

  test('superuser login via _superusers.authWithPassword', T, async () => {
    const pb = server.client();
    const res = await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
    assert.equal(res.record.email, SUPERUSER_EMAIL);
    assert.equal(res.record.collectionName, '_superusers');
    assert.equal(res.record.collectionId, 'pbc_3142635823');
    assert.equal(res.record.verified, true);
    assert.equal(pb.authStore.isSuperuser, true);
    const p = payloadOf(res.token);
    assert.equal(p.collectionId, 'pbc_3142635823');
    assert.equal(p.type, 'auth');
    // superuser token lifetime: 1 day
    assert.ok(p.exp - Date.now() / 1000 > 86400 - 120 && p.exp - Date.now() / 1000 <= 86400 + 5);

    const wrong = await expectError(
      () => server.client().collection('_superusers').authWithPassword(SUPERUSER_EMAIL, 'nope12345678'),
      400,
    );
    assert.deepEqual(wrong.response, AUTH_FAILED);
    // users cannot log in through _superusers
    const userAsAdmin = await expectError(
      () => server.client().collection('_superusers').authWithPassword('alice@example.com', aliceU.password),
      400,
    );
    assert.deepEqual(userAsAdmin.response, AUTH_FAILED);

    // superuser-only endpoints
    assert.ok(Array.isArray((await pb.collections.getFullList()).map((c) => c.name)));
    const asGuest = await expectError(() => server.client().collections.getList(1, 1), 401);
    assert.deepEqual(asGuest.response, NEED_AUTH);
    const asUser = await expectError(async () => (await loginAs(server, bobU)).collections.getList(1, 1), 403);
    assert.deepEqual(asUser.response, NOT_ALLOWED);
    // _superusers records: null rules
    const listSu = await expectError(async () => (await loginAs(server, bobU)).collection('_superusers').getList(1, 1), 403);
    assert.equal(listSu.response.message, 'Only superusers can perform this action.');
    const su = await pb.collection('_superusers').getFullList();
    assert.equal(su.length, 1);
    assert.equal(su[0].email, SUPERUSER_EMAIL);

    // health as superuser carries extra data
    const health = await pb.health.check();
    assert.equal(health.code, 200);
    assert.equal(health.message, 'API is healthy.');
    const guestHealth = await server.client().health.check();
    assert.deepEqual(guestHealth, { message: 'API is healthy.', code: 200, data: {} });
  });

  test('listAuthMethods reflects passwordAuth.identityFields', T, async () => {
    const methods = await server.client().collection('users').listAuthMethods();
    assert.deepEqual(methods, {
      password: { identityFields: ['email', 'username'], enabled: true },
      oauth2: { providers: [], enabled: false },
      mfa: { enabled: false, duration: 0 },
      otp: { enabled: false, duration: 0 },
    });
    const su = await server.client().collection('_superusers').listAuthMethods();
    assert.deepEqual(su.password, { identityFields: ['email'], enabled: true });

    // raw call without ?fields also carries the legacy keys
    const raw = await (await server.fetch('/api/collections/users/auth-methods')).json();
    assert.equal(raw.usernamePassword, true);
    assert.equal(raw.emailPassword, true);
    assert.deepEqual(raw.authProviders, []);
  });

  test('password auth disabled → 403', T, async () => {
    await admin.collections.update('users', { passwordAuth: { enabled: false, identityFields: ['email', 'username'] } });
    try {
      const err = await expectError(
        () => server.client().collection('users').authWithPassword('bob', bobU.password),
        403,
      );
      assert.deepEqual(err.response, {
        data: {},
        message: 'The collection is not configured to allow password authentication.',
        status: 403,
      });
      const methods = await server.client().collection('users').listAuthMethods();
      assert.equal(methods.password.enabled, false);
    } finally {
      await admin.collections.update('users', { passwordAuth: { enabled: true, identityFields: ['email', 'username'] } });
    }
    await loginAs(server, bobU);
  });
});
