// Record history (pocketlog-only): `GET /api/collections/{c}/records/{id}/history` (superuser)
// → {items:[{seq,time,action,actor,record}], totalItems, firstSeq}, one item per commit that
// touched the record, read from the event log.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, signUp, pocketlogOnly } from './harness.mjs';

const T = { timeout: 60_000 };
const TIME_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('record history', { timeout: 180_000, skip: pocketlogOnly }, () => {
  let server;
  let admin;
  let adminId;
  let docs;
  let aliceU;
  let alice;
  let guest;

  const history = (pb, collection, id) => pb.send(`/api/collections/${collection}/records/${id}/history`, {});

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    adminId = admin.authStore.record.id;
    const users = await admin.collections.getOne('users');
    await admin.collections.update(users.id, { createRule: '' });
    docs = await admin.collections.create({
      name: 'docs',
      type: 'base',
      listRule: '',
      viewRule: '',
      createRule: '',
      // anyone may update (so a guest update shows up as a guest actor), only superusers delete
      updateRule: '',
      fields: [
        { name: 'title', type: 'text', required: true },
        { name: 'n', type: 'number' },
        { name: 'secret', type: 'text', hidden: true },
      ],
    });
    aliceU = await signUp(server, 'alice');
    alice = server.client();
    await alice.collection('users').authWithPassword(aliceU.email, aliceU.password);
    guest = server.client();
  });
  after(async () => {
    await server?.stop();
  });

  test('create / update / update / delete → 4 versions in order with actors and values', T, async () => {
    const created = await admin.collection('docs').create({ title: 'v1', n: 1, secret: 's1' });
    const other = await admin.collection('docs').create({ title: 'other', n: 0 });
    const v2 = await alice.collection('docs').update(created.id, { title: 'v2' });
    await admin.collection('docs').update(other.id, { n: 5 });
    const v3 = await guest.collection('docs').update(created.id, { n: 3 });
    await admin.collection('docs').delete(created.id);

    const h = await history(admin, 'docs', created.id);
    assert.equal(h.items.length, 4, JSON.stringify(h));
    assert.equal(h.totalItems, 4);
    assert.equal(typeof h.firstSeq, 'number');
    assert.ok(h.firstSeq <= h.items[0].seq);

    assert.deepEqual(
      h.items.map((i) => i.action),
      ['create', 'update', 'update', 'delete'],
    );
    for (let i = 0; i < h.items.length; i++) {
      const item = h.items[i];
      assert.ok(Number.isInteger(item.seq) && item.seq > 0, `seq ${item.seq}`);
      if (i > 0) {
        assert.ok(item.seq > h.items[i - 1].seq, `seq increases: ${h.items.map((x) => x.seq)}`);
        assert.ok(item.time >= h.items[i - 1].time, 'time does not go back');
      }
      assert.match(item.time, TIME_RE);
      assert.equal(item.record.id, created.id);
      assert.equal(item.record.collectionId, docs.id);
      assert.equal(item.record.collectionName, 'docs');
      assert.ok(!('secret' in item.record), 'hidden fields are left out');
    }
    // the other record's changes are in between but not listed
    assert.ok(h.items[2].seq - h.items[1].seq >= 2);

    assert.deepEqual(
      h.items.map((i) => i.actor),
      [
        { type: 'superuser', id: adminId },
        { type: 'record', collectionId: aliceU.record.collectionId, id: aliceU.record.id },
        { type: 'guest' },
        { type: 'superuser', id: adminId },
      ],
    );

    // the record after each change (before it, for the delete)
    const values = (r) => ({ id: r.id, title: r.title, n: r.n, created: r.created, updated: r.updated });
    assert.deepEqual(values(h.items[0].record), values(created));
    assert.deepEqual(values(h.items[1].record), values(v2));
    assert.deepEqual(values(h.items[2].record), values(v3));
    assert.deepEqual(values(h.items[3].record), values(v3));

    // the other record has its own history
    const ho = await history(admin, 'docs', other.id);
    assert.deepEqual(
      ho.items.map((i) => [i.action, i.record.n]),
      [
        ['create', 0],
        ['update', 5],
      ],
    );
    // collection by id works the same as by name
    assert.deepEqual(await history(admin, docs.id, created.id), h);
  });

  test('history survives a restart', T, async () => {
    const rec = await admin.collection('docs').create({ title: 'persist', n: 1 });
    await admin.collection('docs').update(rec.id, { n: 2 });
    const before = await history(admin, 'docs', rec.id);
    assert.equal(before.items.length, 2);
    await server.restart();
    const afterRestart = await history(admin, 'docs', rec.id);
    assert.deepEqual(afterRestart, before);
  });

  test('unknown record → empty; unknown collection → 404', T, async () => {
    const h = await history(admin, 'docs', 'nosuchrecord123');
    assert.deepEqual(h.items, []);
    assert.equal(h.totalItems, 0);
    await expectError(() => history(admin, 'nope', 'nosuchrecord123'), 404);
  });

  test('non-superusers get 401 / 403', T, async () => {
    const rec = await admin.collection('docs').create({ title: 'private', n: 1 });
    const g = await expectError(() => history(guest, 'docs', rec.id), 401);
    assert.equal(g.response.message, 'The request requires valid record authorization token.');
    const a = await expectError(() => history(alice, 'docs', rec.id), 403);
    assert.equal(a.response.message, 'The authorized record is not allowed to perform this action.');
    // not even for the user's own record
    await expectError(() => history(alice, 'users', aliceU.record.id), 403);
    // a bad token is a guest
    const bad = server.client();
    bad.authStore.save('not-a-token', null);
    await expectError(() => history(bad, 'docs', rec.id), 401);
  });

  test('auth records: password and tokenKey are never in the history', T, async () => {
    await alice.collection('users').update(aliceU.record.id, {
      name: 'Alice A',
      oldPassword: aliceU.password,
      password: 'newpass12345',
      passwordConfirm: 'newpass12345',
    });
    const h = await history(admin, 'users', aliceU.record.id);
    assert.deepEqual(
      h.items.map((i) => i.action),
      ['create', 'update'],
    );
    assert.equal(h.items[1].record.name, 'Alice A');
    assert.equal(h.items[1].record.email, aliceU.email);
    for (const item of h.items) {
      assert.ok(!('password' in item.record));
      assert.ok(!('passwordHash' in item.record));
      assert.ok(!('tokenKey' in item.record));
    }
    assert.ok(!JSON.stringify(h).includes('newpass12345'));
  });
});
