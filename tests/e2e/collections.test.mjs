// Collections CRUD (superuser only), view collections, settings.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, signUp, loginAs } from './harness.mjs';

const T = { timeout: 20_000 };
const NEED_AUTH = { data: {}, message: 'The request requires valid record authorization token.', status: 401 };
const NOT_ALLOWED = { data: {}, message: 'The authorized record is not allowed to perform this action.', status: 403 };

describe('collections and settings', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let user;

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    user = await loginAs(server, await signUpByEmail(server));
  });
  after(async () => {
    await server?.stop();
  });

  // fresh users collection has only email identity: sign up + login by email
  async function signUpByEmail(s) {
    const pb = s.client();
    await pb.collection('users').create({
      email: 'dave@example.com',
      password: 'davepass123',
      passwordConfirm: 'davepass123',
    });
    return { username: 'dave@example.com', password: 'davepass123' };
  }

  test('fresh install lists the system collections and users', T, async () => {
    const all = await admin.collections.getFullList();
    const names = all.map((c) => c.name);
    for (const n of ['_superusers', 'users', '_mfas', '_otps', '_externalAuths', '_authOrigins']) {
      assert.ok(names.includes(n), `has ${n}`);
    }
    const su = all.find((c) => c.name === '_superusers');
    assert.equal(su.id, 'pbc_3142635823');
    assert.equal(su.system, true);
    assert.equal(su.type, 'auth');
    const users = all.find((c) => c.name === 'users');
    assert.equal(users.id, '_pb_users_auth_');
    assert.equal(users.system, false);
    assert.equal(users.listRule, 'id = @request.auth.id');
    assert.equal(users.createRule, '');
    assert.equal(users.manageRule, null);
    assert.deepEqual(users.passwordAuth, { enabled: true, identityFields: ['email'] });
    assert.deepEqual(
      users.fields.map((f) => f.name),
      ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified', 'name', 'avatar', 'created', 'updated'],
    );
    assert.equal(users.authToken.duration, 432000);
    assert.equal(users.authToken.secret, undefined, 'secrets are never returned');

    const auths = await admin.collections.getList(1, 30, { filter: 'type = "auth"', fields: 'id,name,type', sort: '-created' });
    assert.deepEqual(auths, {
      items: [
        { id: '_pb_users_auth_', name: 'users', type: 'auth' },
        { id: 'pbc_3142635823', name: '_superusers', type: 'auth' },
      ],
      page: 1,
      perPage: 30,
      totalItems: 2,
      totalPages: 1,
    });
  });

  test('create: minimal and full definitions', T, async () => {
    const tmp = await admin.collections.create({ name: 'tmpc' });
    assert.equal(tmp.type, 'base');
    assert.equal(tmp.id, 'pbc_' + tmp.id.slice(4));
    for (const r of ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule']) assert.equal(tmp[r], null);
    assert.deepEqual(
      tmp.fields.map((f) => f.name),
      ['id'],
      'no created/updated unless asked for',
    );
    assert.deepEqual(tmp.indexes, []);
    assert.equal(tmp.system, false);
    assert.match(tmp.created, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);

    const posts = await admin.collections.create({
      name: 'posts',
      listRule: '',
      viewRule: '',
      fields: [
        { name: 'title', type: 'text', required: true, max: 100 },
        { name: 'views', type: 'number', onlyInt: true, min: 0 },
        { name: 'published', type: 'bool' },
        { name: 'created', type: 'autodate', onCreate: true },
      ],
      indexes: ['CREATE INDEX idx_posts_title ON posts (title)'],
    });
    const title = posts.fields.find((f) => f.name === 'title');
    assert.deepEqual(
      { ...title, id: 'x' },
      {
        autogeneratePattern: '',
        help: '',
        hidden: false,
        id: 'x',
        max: 100,
        min: 0,
        name: 'title',
        pattern: '',
        presentable: false,
        primaryKey: false,
        required: true,
        system: false,
        type: 'text',
      },
    );
    const views = posts.fields.find((f) => f.name === 'views');
    assert.equal(views.onlyInt, true);
    assert.equal(views.min, 0);
    assert.equal(views.max, null);
    assert.deepEqual(posts.indexes, ['CREATE INDEX idx_posts_title ON posts (title)']);

    // getOne by name and by id
    assert.equal((await admin.collections.getOne('posts')).id, posts.id);
    assert.equal((await admin.collections.getOne(posts.id)).name, 'posts');

    // auth collection gets the auth system fields
    const members = await admin.collections.create({ name: 'members', type: 'auth' });
    assert.deepEqual(
      members.fields.map((f) => f.name),
      ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified'],
    );
    assert.equal(members.authRule, '');
    assert.deepEqual(members.passwordAuth.identityFields, ['email']);
  });

  test('create: validation errors', T, async () => {
    const dup = await expectError(() => admin.collections.create({ name: 'POSTS' }), 400);
    assert.equal(dup.response.message, 'Failed to create collection.');
    assert.equal(dup.response.data.name.code, 'validation_collection_name_exists');

    const badName = await expectError(() => admin.collections.create({ name: 'bad name!' }), 400);
    assert.equal(badName.response.data.name.code, 'validation_match_invalid');

    const noName = await expectError(() => admin.collections.create({}), 400);
    assert.equal(noName.response.data.name.code, 'validation_required');

    const badType = await expectError(() => admin.collections.create({ name: 'x1', type: 'weird' }), 400);
    assert.equal(badType.response.data.type.code, 'validation_in_invalid');

    const badRule = await expectError(
      () => admin.collections.create({ name: 'x2', listRule: 'nosuchfield = 1' }),
      400,
    );
    assert.equal(badRule.response.data.listRule.code, 'validation_invalid_rule');

    const badFieldType = await expectError(
      () => admin.collections.create({ name: 'x3', fields: [{ name: 'a', type: 'nosuchtype' }] }),
      400,
    );
    assert.deepEqual(badFieldType.response, {
      data: {},
      message: 'Failed to load the submitted data due to invalid formatting.',
      status: 400,
    });
  });

  test('update: rules, fields (replace), rename', T, async () => {
    const posts = await admin.collections.getOne('posts');
    await admin.collection('posts').create({ title: 'Hello', views: 5, published: true });

    const r1 = await admin.collections.update('posts', { createRule: '@request.auth.id != ""' });
    assert.equal(r1.createRule, '@request.auth.id != ""');
    assert.equal(r1.listRule, '', 'top-level keys not sent are kept');
    assert.deepEqual(
      r1.fields.map((f) => f.name),
      posts.fields.map((f) => f.name),
    );

    // fields replaces the whole list: drop `published`, add `body`
    const kept = posts.fields.filter((f) => f.name !== 'published');
    const r2 = await admin.collections.update('posts', { fields: [...kept, { name: 'body', type: 'text' }] });
    assert.deepEqual(
      r2.fields.map((f) => f.name),
      ['id', 'title', 'views', 'created', 'body'],
    );
    const rec = (await admin.collection('posts').getFullList())[0];
    assert.equal(rec.title, 'Hello');
    assert.equal(rec.body, '');
    assert.equal(rec.published, undefined, 'dropped field is gone from records');

    // rename a field (matched by id) keeps its data
    const titleField = r2.fields.find((f) => f.name === 'title');
    const renamed = r2.fields.map((f) => (f.id === titleField.id ? { ...f, name: 'headline' } : f));
    // indexes are NOT rewritten on rename: the old index expression fails
    const idxErr = await expectError(() => admin.collections.update('posts', { fields: renamed }), 400);
    assert.deepEqual(idxErr.response, {
      data: {
        indexes: {
          0: {
            code: 'validation_invalid_index_expression',
            message: 'Failed to create index idx_posts_title - SQL logic error: no such column: title (1).',
          },
        },
      },
      message: 'Failed to update collection.',
      status: 400,
    });
    const r3 = await admin.collections.update('posts', {
      fields: renamed,
      indexes: ['CREATE INDEX idx_posts_title ON posts (headline)'],
    });
    assert.ok(r3.fields.some((f) => f.name === 'headline'));
    assert.equal((await admin.collection('posts').getFullList())[0].headline, 'Hello');

    // rename the collection
    const r4 = await admin.collections.update('tmpc', { name: 'tmpc2' });
    assert.equal(r4.name, 'tmpc2');
    await expectError(() => admin.collections.getOne('tmpc'), 404);

    const badRule = await expectError(() => admin.collections.update('posts', { viewRule: '(((' }), 400);
    assert.equal(badRule.response.message, 'Failed to update collection.');
    assert.equal(badRule.response.data.viewRule.code, 'validation_invalid_rule');
  });

  test('view collection from a viewQuery lists rows', T, async () => {
    for (const [headline, views] of [
      ['Low', 3],
      ['Mid', 20],
      ['High', 99],
    ]) {
      await admin.collection('posts').create({ headline, views });
    }
    const view = await admin.collections.create({
      name: 'popular_posts',
      type: 'view',
      listRule: '',
      viewRule: '',
      viewQuery: 'SELECT id, headline, views FROM posts WHERE views > 10',
    });
    assert.equal(view.type, 'view');
    assert.equal(view.viewQuery, 'SELECT id, headline, views FROM posts WHERE views > 10');
    assert.deepEqual(
      view.fields.map((f) => [f.name, f.type]),
      [
        ['id', 'text'],
        ['headline', 'text'],
        ['views', 'number'],
      ],
    );
    assert.equal(view.createRule, null);

    const guest = server.client();
    const rows = await guest.collection('popular_posts').getList(1, 30, { sort: '-views' });
    assert.equal(rows.totalItems, 2);
    assert.deepEqual(
      rows.items.map((r) => [r.headline, r.views, r.collectionName]),
      [
        ['High', 99, 'popular_posts'],
        ['Mid', 20, 'popular_posts'],
      ],
    );
    const one = await guest.collection('popular_posts').getOne(rows.items[0].id);
    assert.equal(one.headline, 'High');
    const filtered = await guest.collection('popular_posts').getList(1, 30, { filter: 'views < 50' });
    assert.deepEqual(
      filtered.items.map((r) => r.headline),
      ['Mid'],
    );

    const create = await expectError(() => admin.collection('popular_posts').create({ headline: 'x' }), 400);
    assert.deepEqual(create.response, { data: {}, message: 'Unsupported collection type.', status: 400 });

    // aggregate view
    const stats = await admin.collections.create({
      name: 'post_stats',
      type: 'view',
      listRule: '',
      viewQuery: 'SELECT (ROW_NUMBER() OVER()) as id, COUNT(*) as total, MAX(views) as top FROM posts',
    });
    assert.ok(stats.fields.some((f) => f.name === 'total'));
    const agg = await guest.collection('post_stats').getFullList();
    assert.equal(agg.length, 1);
    assert.equal(agg[0].total, 4);
    assert.equal(agg[0].top, 99);

    const badView = await expectError(
      () => admin.collections.create({ name: 'bad_view', type: 'view', viewQuery: 'DELETE FROM posts' }),
      400,
    );
    assert.equal(badView.response.message, 'Failed to create collection.');
    assert.ok(badView.response.data.viewQuery);
  });

  test('delete collections (204), references block deletion', T, async () => {
    const res = await server.fetch('/api/collections/tmpc2', {
      method: 'DELETE',
      headers: { Authorization: admin.authStore.token },
    });
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    const gone = await expectError(() => admin.collections.getOne('tmpc2'), 404);
    assert.deepEqual(gone.response, { data: {}, message: "The requested resource wasn't found.", status: 404 });
    const goneRecords = await expectError(() => admin.collection('tmpc2').getList(1, 1), 404);
    assert.equal(goneRecords.response.message, 'Missing collection context.');

    const parent = await admin.collections.create({ name: 'parents', fields: [{ name: 'n', type: 'text' }] });
    await admin.collections.create({
      name: 'children',
      fields: [{ name: 'parent', type: 'relation', collectionId: parent.id, maxSelect: 1 }],
    });
    const blocked = await expectError(() => admin.collections.delete('parents'), 400);
    assert.deepEqual(blocked.response, {
      data: {},
      message: 'Failed to delete collection probably due to existing reference in children.',
      status: 400,
    });
    assert.equal(await admin.collections.delete('children'), true);
    assert.equal(await admin.collections.delete('parents'), true);

    // views depending on posts must be dropped before posts
    assert.equal(await admin.collections.delete('post_stats'), true);
    assert.equal(await admin.collections.delete('popular_posts'), true);

    // system collections can't be deleted
    const sys = await expectError(() => admin.collections.delete('_superusers'), 400);
    assert.deepEqual(sys.response, { data: {}, message: 'Failed to delete collection.', status: 400 });
  });

  test('truncate deletes all records', T, async () => {
    assert.ok((await admin.collection('posts').getList(1, 1)).totalItems > 0);
    assert.equal(await admin.collections.truncate('posts'), true);
    assert.equal((await admin.collection('posts').getList(1, 1)).totalItems, 0);
  });

  test('non-superusers: guest 401, user 403 on every collections endpoint', T, async () => {
    const guest = server.client();
    const calls = (pb) => [
      () => pb.collections.getList(1, 10),
      () => pb.collections.getOne('posts'),
      () => pb.collections.create({ name: 'hack' }),
      () => pb.collections.update('posts', { listRule: null }),
      () => pb.collections.delete('posts'),
      () => pb.settings.getAll(),
      () => pb.settings.update({ meta: { appName: 'hacked' } }),
    ];
    for (const fn of calls(guest)) assert.deepEqual((await expectError(fn, 401)).response, NEED_AUTH);
    for (const fn of calls(user)) assert.deepEqual((await expectError(fn, 403)).response, NOT_ALLOWED);
    assert.equal((await admin.collections.getOne('posts')).listRule, '', 'nothing changed');
  });

  test('settings: get and update', T, async () => {
    const s = await admin.settings.getAll();
    assert.equal(s.meta.appName, 'Acme');
    assert.equal(s.meta.appURL, 'http://localhost:8090');
    assert.deepEqual(s.batch, { enabled: false, maxRequests: 50, timeout: 3, maxBodySize: 0 });
    assert.equal(s.smtp.enabled, false);
    assert.equal(s.smtp.password, undefined);
    assert.equal(s.rateLimits.enabled, false);
    for (const k of ['smtp', 'backups', 's3', 'meta', 'rateLimits', 'trustedProxy', 'batch', 'logs']) {
      assert.ok(k in s, `settings.${k}`);
    }

    const u = await admin.settings.update({
      meta: { appName: 'ChatApp', appURL: 'http://127.0.0.1:8091' },
      smtp: { enabled: true, host: '127.0.0.1', port: 2525, username: 'u', password: 'p', tls: false },
      batch: { enabled: true, maxRequests: 10 },
    });
    assert.equal(u.meta.appName, 'ChatApp');
    assert.equal(u.meta.appURL, 'http://127.0.0.1:8091');
    assert.equal(u.meta.senderAddress, s.meta.senderAddress, 'deep merge keeps siblings');
    assert.equal(u.smtp.host, '127.0.0.1');
    assert.equal(u.smtp.password, undefined, 'secret is write-only');
    assert.equal(u.batch.enabled, true);
    assert.equal(u.batch.maxRequests, 10);
    assert.equal(u.batch.timeout, 3);
    assert.deepEqual(await admin.settings.getAll(), u);

    const bad = await expectError(() => admin.settings.update({ meta: { appName: '', appURL: 'not a url' } }), 400);
    assert.equal(bad.response.message, 'An error occurred while saving the new settings.');
    assert.deepEqual(bad.response.data.meta.appName, { code: 'validation_required', message: 'Cannot be blank.' });
    assert.deepEqual(bad.response.data.meta.appURL, { code: 'validation_is_url', message: 'Must be a valid URL.' });
    assert.equal((await admin.settings.getAll()).meta.appName, 'ChatApp', 'failed update changed nothing');
  });
});
