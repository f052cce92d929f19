// Records CRUD, field types, modifiers, list params, rules, unique indexes, batch.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, signUp, loginAs, seedChatSchema, sleep } from './harness.mjs';

const T = { timeout: 20_000 };
const NOT_FOUND = { data: {}, message: "The requested resource wasn't found.", status: 404 };
const SUPERUSERS_ONLY = { data: {}, message: 'Only superusers can perform this action.', status: 403 };

describe('records', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let alice;
  let bob;
  let aliceU;
  let bobU;

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await seedChatSchema(admin);
    aliceU = await signUp(server, 'alice');
    bobU = await signUp(server, 'bob');
    alice = await loginAs(server, aliceU);
    bob = await loginAs(server, bobU);

    await admin.collections.create({
      name: 'items',
      listRule: '',
      viewRule: '',
      createRule: '',
      updateRule: '',
      deleteRule: '',
      fields: [
        { name: 'title', type: 'text', required: true, max: 100 },
        { name: 'count', type: 'number' },
        { name: 'price', type: 'number', min: 0 },
        { name: 'active', type: 'bool' },
        { name: 'status', type: 'select', maxSelect: 1, values: ['draft', 'live', 'archived'] },
        { name: 'tags', type: 'select', maxSelect: 4, values: ['go', 'rust', 'js', 'db', 'c'] },
        { name: 'meta', type: 'json' },
        { name: 'due', type: 'date' },
        { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
        { name: 'reviewers', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 5 },
        { name: 'contact', type: 'email' },
        { name: 'created', type: 'autodate', onCreate: true },
        { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
      ],
      indexes: ['CREATE UNIQUE INDEX idx_items_title ON items (title)'],
    });
    await admin.collections.create({
      name: 'notes',
      listRule: 'owner = @request.auth.id',
      viewRule: 'owner = @request.auth.id',
      createRule: '@request.auth.id != ""',
      updateRule: 'owner = @request.auth.id',
      deleteRule: 'owner = @request.auth.id',
      fields: [
        { name: 'body', type: 'text' },
        { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1, required: true },
      ],
    });
    await admin.collections.create({ name: 'secrets', fields: [{ name: 'value', type: 'text' }] });
  });
  after(async () => {
    await server?.stop();
  });

  let full; // record created with every field type

  test('create + view with every common field type', T, async () => {
    const created = await alice.collection('items').create({
      title: 'Full item',
      count: 42,
      price: 4.5,
      active: true,
      status: 'live',
      tags: ['rust', 'db'],
      meta: { lang: 'en', n: [1, 2, 3], nested: { ok: true } },
      due: '2024-05-01T10:00:00Z',
      owner: aliceU.record.id,
      reviewers: [bobU.record.id, aliceU.record.id],
      contact: 'a@b.co',
    });
    assert.match(created.id, /^[a-z0-9]{15}$/);
    const expected = {
      title: 'Full item',
      count: 42,
      price: 4.5,
      active: true,
      status: 'live',
      tags: ['rust', 'db'],
      meta: { lang: 'en', n: [1, 2, 3], nested: { ok: true } },
      due: '2024-05-01 10:00:00.000Z',
      owner: aliceU.record.id,
      reviewers: [bobU.record.id, aliceU.record.id],
      contact: 'a@b.co',
      collectionName: 'items',
    };
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(created[k], v, `create ${k}`);
    assert.match(created.collectionId, /^pbc_\d+$/);

    const viewed = await bob.collection('items').getOne(created.id);
    assert.deepEqual(viewed, created);
    full = created;

    // empty values of each type
    const empty = await alice.collection('items').create({ title: 'Empty item' });
    assert.deepEqual(
      {
        count: empty.count,
        price: empty.price,
        active: empty.active,
        status: empty.status,
        tags: empty.tags,
        meta: empty.meta,
        due: empty.due,
        owner: empty.owner,
        reviewers: empty.reviewers,
        contact: empty.contact,
      },
      { count: 0, price: 0, active: false, status: '', tags: [], meta: null, due: '', owner: '', reviewers: [], contact: '' },
    );
    await alice.collection('items').delete(empty.id);
  });

  test('lenient input coercion', T, async () => {
    const r = await alice.collection('items').create({
      title: 'Coerced',
      count: '12',
      active: 'true',
      status: ['draft'],
      tags: 'go',
      due: '2025-01-15',
      owner: [bobU.record.id],
      reviewers: bobU.record.id,
      unknownKey: 'ignored',
    });
    assert.equal(r.count, 12);
    assert.equal(r.active, true);
    assert.equal(r.status, 'draft');
    assert.deepEqual(r.tags, ['go']);
    assert.equal(r.due, '2025-01-15 00:00:00.000Z');
    assert.equal(r.owner, bobU.record.id);
    assert.deepEqual(r.reviewers, [bobU.record.id]);
    assert.equal(r.unknownKey, undefined);
    await admin.collection('items').delete(r.id);
  });

  test('field validation errors', T, async () => {
    const err = await expectError(
      () =>
        alice.collection('items').create({
          title: '',
          price: -1,
          status: 'bogus',
          tags: ['go', 'nope'],
          contact: 'not-an-email',
          owner: 'missingid000000',
        }),
      400,
    );
    assert.equal(err.response.message, 'Failed to create record.');
    const d = err.response.data;
    assert.deepEqual(d.title, { code: 'validation_required', message: 'Cannot be blank.' });
    assert.deepEqual(d.price, {
      code: 'validation_min_number_constraint',
      message: 'Must be greater or equal than 0.',
      params: { min: 0 },
    });
    assert.deepEqual(d.status, { code: 'validation_invalid_value', message: 'Invalid value bogus.', params: { value: 'bogus' } });
    assert.deepEqual(d.tags, { code: 'validation_invalid_value', message: 'Invalid value nope.', params: { value: 'nope' } });
    assert.deepEqual(d.contact, { code: 'validation_is_email', message: 'Must be a valid email address.' });
    assert.deepEqual(d.owner, {
      code: 'validation_missing_rel_records',
      message: 'Failed to find all relation records with the provided ids.',
    });

    const tooMany = await expectError(
      () => alice.collection('items').create({ title: 'x', tags: ['go', 'rust', 'js', 'db', 'c'] }),
      400,
    );
    assert.equal(tooMany.response.data.tags.code, 'validation_too_many_values');
    assert.deepEqual(tooMany.response.data.tags.params, { maxSelect: 4 });
    // duplicates are removed before counting
    const dedup = await alice.collection('items').create({ title: 'dedup', tags: ['js', 'go', 'js', 'go'] });
    assert.deepEqual(dedup.tags, ['js', 'go']);
    await alice.collection('items').delete(dedup.id);
  });

  test('update returns the full record; field+ / +field / field- modifiers', T, async () => {
    await sleep(5);
    const up = await alice.collection('items').update(full.id, { title: 'Full item v2' });
    assert.equal(up.title, 'Full item v2');
    assert.equal(up.count, 42);
    assert.deepEqual(up.meta, full.meta);
    assert.equal(up.created, full.created);
    assert.notEqual(up.updated, full.updated);

    let r = await alice.collection('items').update(full.id, { 'count+': 5 });
    assert.equal(r.count, 47);
    r = await alice.collection('items').update(full.id, { 'count-': 10 });
    assert.equal(r.count, 37);
    r = await alice.collection('items').update(full.id, { 'price+': 0.25 });
    assert.equal(r.price, 4.75);

    r = await alice.collection('items').update(full.id, { 'tags+': 'go' });
    assert.deepEqual(r.tags, ['rust', 'db', 'go']);
    r = await alice.collection('items').update(full.id, { '+tags': ['js'] });
    assert.deepEqual(r.tags, ['js', 'rust', 'db', 'go']);
    r = await alice.collection('items').update(full.id, { 'tags-': ['rust', 'go'] });
    assert.deepEqual(r.tags, ['js', 'db']);

    r = await alice.collection('items').update(full.id, { 'reviewers-': bobU.record.id });
    assert.deepEqual(r.reviewers, [aliceU.record.id]);
    r = await alice.collection('items').update(full.id, { '+reviewers': bobU.record.id });
    assert.deepEqual(r.reviewers, [bobU.record.id, aliceU.record.id]);

    // empty body: valid, only `updated` changes
    await sleep(5);
    const before = await alice.collection('items').getOne(full.id);
    const same = await alice.collection('items').update(full.id, {});
    assert.notEqual(same.updated, before.updated);
    assert.deepEqual({ ...same, updated: before.updated }, before);

    // id can't change
    const pk = await expectError(() => alice.collection('items').update(full.id, { id: 'otherid00000000' }), 400);
    assert.equal(pk.response.message, 'Failed to update record.');
    assert.equal(pk.response.data.id.code, 'validation_pk_change');
    full = await alice.collection('items').getOne(full.id);
  });

  test('expand single and multi relations', T, async () => {
    const r = await bob.collection('items').getOne(full.id, { expand: 'owner,reviewers' });
    assert.equal(r.expand.owner.id, aliceU.record.id);
    assert.equal(r.expand.owner.username, 'alice');
    assert.equal(r.expand.owner.email, undefined, 'hidden email stays hidden in expand');
    assert.deepEqual(
      r.expand.reviewers.map((u) => u.id),
      r.reviewers,
    );
    // Reference (differs from records-and-fields.md §9 "expand:{} even if nothing could be
    // expanded"): an unknown path is ignored and, when nothing is expanded, the `expand` key is
    // ABSENT. A bad nested path (`owner.nope`) drops that whole path (owner not expanded either).
    const bogus = await bob.collection('items').getOne(full.id, { expand: 'nope' });
    assert.equal(bogus.expand, undefined);
    const mixed = await bob.collection('items').getOne(full.id, { expand: 'nope,owner' });
    assert.deepEqual(Object.keys(mixed.expand), ['owner']);
    const badNested = await bob.collection('items').getOne(full.id, { expand: 'owner.nope' });
    assert.equal(badNested.expand, undefined);
  });

  test('list: pagination envelope, skipTotal, sort, filter, fields', T, async () => {
    const titles = ['p-a', 'p-b', 'p-c', 'p-d', 'p-e'];
    for (const [i, title] of titles.entries()) {
      await alice.collection('items').create({ title, count: i + 1, status: i % 2 ? 'draft' : 'live' });
    }
    const filter = 'title ~ "p-"';
    const page1 = await bob.collection('items').getList(1, 2, { filter, sort: 'count' });
    assert.deepEqual(Object.keys(page1).sort(), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
    assert.equal(page1.page, 1);
    assert.equal(page1.perPage, 2);
    assert.equal(page1.totalItems, 5);
    assert.equal(page1.totalPages, 3);
    assert.deepEqual(
      page1.items.map((i) => i.title),
      ['p-a', 'p-b'],
    );
    const page3 = await bob.collection('items').getList(3, 2, { filter, sort: 'count' });
    assert.deepEqual(
      page3.items.map((i) => i.title),
      ['p-e'],
    );
    const page9 = await bob.collection('items').getList(9, 2, { filter });
    assert.deepEqual(page9.items, []);
    assert.equal(page9.totalItems, 5);

    const skip = await bob.collection('items').getList(1, 2, { filter, sort: '-count', skipTotal: true });
    assert.equal(skip.totalItems, -1);
    assert.equal(skip.totalPages, -1);
    assert.deepEqual(
      skip.items.map((i) => i.title),
      ['p-e', 'p-d'],
    );

    const multiSort = await bob.collection('items').getList(1, 10, { filter, sort: 'status,-count' });
    assert.deepEqual(
      multiSort.items.map((i) => i.title),
      ['p-d', 'p-b', 'p-e', 'p-c', 'p-a'],
    );

    const filtered = await bob.collection('items').getList(1, 10, { filter: 'count >= 2 && count <= 3 && title ~ "p-"' });
    assert.equal(filtered.totalItems, 2);

    const picked = await bob.collection('items').getList(1, 2, { filter, sort: 'count', fields: 'id,title' });
    for (const it of picked.items) assert.deepEqual(Object.keys(it).sort(), ['id', 'title']);
    assert.equal(picked.totalItems, 5, 'fields does not touch the envelope');
    const one = await bob.collection('items').getOne(full.id, { fields: 'title,count' });
    assert.deepEqual(one, { title: full.title, count: full.count });

    // default perPage is 30
    const def = await bob.send('/api/collections/items/records', { method: 'GET' });
    assert.equal(def.perPage, 30);
    assert.equal(def.page, 1);
  });

  test('getFullList and getFirstListItem', T, async () => {
    const all = await bob.collection('items').getFullList({ filter: 'title ~ "p-"', sort: '-count', batch: 2 });
    assert.ok(Array.isArray(all));
    assert.deepEqual(
      all.map((i) => i.title),
      ['p-e', 'p-d', 'p-c', 'p-b', 'p-a'],
    );
    const first = await bob.collection('items').getFirstListItem('title = "p-c"');
    assert.equal(first.title, 'p-c');
    assert.equal(first.count, 3);
    const firstMissing = await expectError(() => bob.collection('items').getFirstListItem('title = "nope"'), 404);
    assert.equal(firstMissing.status, 404);
  });

  test('bad filter / sort → 400; @request filter by non-superuser → 403', T, async () => {
    const badFilter = await expectError(() => bob.collection('items').getList(1, 10, { filter: 'title ~~ ' }), 400);
    assert.deepEqual(badFilter.response.data, {});
    const badField = await expectError(() => bob.collection('items').getList(1, 10, { filter: 'nosuchfield = 1' }), 400);
    assert.deepEqual(badField.response.data, {});
    const badSort = await expectError(() => bob.collection('items').getList(1, 10, { sort: 'nosuchfield' }), 400);
    assert.deepEqual(badSort.response.data, {});
    const req = await expectError(
      () => bob.collection('items').getList(1, 10, { filter: '@request.auth.id != ""' }),
      403,
    );
    assert.equal(req.response.message, 'Only superusers can filter by @request.');
    // superuser may
    const ok = await admin.collection('items').getList(1, 1, { filter: '@request.auth.id != ""' });
    assert.ok(ok.totalItems > 0);
  });

  test('404 for missing ids and unknown collections', T, async () => {
    for (const fn of [
      () => bob.collection('items').getOne('missingid000000'),
      () => bob.collection('items').update('missingid000000', { title: 'x' }),
      () => bob.collection('items').delete('missingid000000'),
    ]) {
      const err = await expectError(fn, 404);
      assert.deepEqual(err.response, NOT_FOUND);
    }
    const unknown = await expectError(() => bob.collection('nosuchcollection').getList(1, 1), 404);
    assert.deepEqual(unknown.response, { data: {}, message: 'Missing collection context.', status: 404 });
  });

  test('HTTP edge cases: malformed JSON, list param clamping/errors, unknown routes, headers', T, async () => {
    const GENERIC_400 = { data: {}, message: 'Something went wrong while processing your request.', status: 400 };
    const bad = await server.fetch('/api/collections/items/records', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{bad',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('content-type'), 'application/json');
    assert.deepEqual(await bad.json(), GENERIC_400);

    const clamp = await server.fetch('/api/collections/items/records?perPage=5000&page=0');
    assert.equal(clamp.status, 200);
    const body = await clamp.json();
    assert.equal(body.perPage, 1000);
    assert.equal(body.page, 1);
    for (const q of ['page=abc', 'perPage=x', 'skipTotal=maybe']) {
      const r = await server.fetch(`/api/collections/items/records?${q}`);
      assert.equal(r.status, 400, q);
      assert.deepEqual(await r.json(), GENERIC_400);
    }

    const unknownGet = await server.fetch('/api/nope');
    assert.equal(unknownGet.status, 404);
    assert.deepEqual(await unknownGet.json(), { data: {}, message: 'File not found.', status: 404 });
    const unknownPost = await server.fetch('/api/nope', { method: 'POST' });
    assert.equal(unknownPost.status, 404);
    assert.deepEqual(await unknownPost.json(), NOT_FOUND);

    const ok = await server.fetch(`/api/collections/items/records/${full.id}`, { headers: { Origin: 'http://example.com' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'application/json');
    assert.equal(ok.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(ok.headers.get('x-frame-options'), 'SAMEORIGIN');
    assert.equal(ok.headers.get('access-control-allow-origin'), '*');

    // the SDK sends Content-Type: application/json on bodiless requests too; empty POST bodies are fine
    const emptyPost = await server.fetch('/api/collections/items/records', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(emptyPost.status, 400);
    assert.equal((await emptyPost.json()).data.title.code, 'validation_required');
  });

  test('delete → 204, then gone', T, async () => {
    const r = await alice.collection('items').create({ title: 'to delete' });
    const res = await server.fetch(`/api/collections/items/records/${r.id}`, {
      method: 'DELETE',
      headers: { Authorization: alice.authStore.token },
    });
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    const err = await expectError(() => alice.collection('items').getOne(r.id), 404);
    assert.deepEqual(err.response, NOT_FOUND);
    // SDK delete resolves to true
    const r2 = await alice.collection('items').create({ title: 'to delete 2' });
    assert.equal(await alice.collection('items').delete(r2.id), true);
  });

  test('rules: list filtered silently, view/update/delete 404, null rule 403', T, async () => {
    const aliceNote = await alice.collection('notes').create({ body: 'alice note', owner: aliceU.record.id });
    const bobNote = await bob.collection('notes').create({ body: 'bob note', owner: bobU.record.id });

    const aliceList = await alice.collection('notes').getList(1, 30);
    assert.deepEqual(
      aliceList.items.map((n) => n.id),
      [aliceNote.id],
    );
    assert.equal(aliceList.totalItems, 1);
    const guestList = await server.client().collection('notes').getList(1, 30);
    assert.deepEqual(guestList, { items: [], page: 1, perPage: 30, totalItems: 0, totalPages: 0 });

    assert.equal((await bob.collection('notes').getOne(bobNote.id)).body, 'bob note');
    for (const fn of [
      () => bob.collection('notes').getOne(aliceNote.id),
      () => bob.collection('notes').update(aliceNote.id, { body: 'hacked' }),
      () => bob.collection('notes').delete(aliceNote.id),
    ]) {
      assert.deepEqual((await expectError(fn, 404)).response, NOT_FOUND);
    }
    assert.equal((await alice.collection('notes').getOne(aliceNote.id)).body, 'alice note');

    // guest create fails the createRule → 400
    const guestCreate = await expectError(
      () => server.client().collection('notes').create({ body: 'g', owner: aliceU.record.id }),
      400,
    );
    assert.deepEqual(guestCreate.response, { data: {}, message: 'Failed to create record.', status: 400 });

    // null rules → 403 for users and guests, superuser bypasses
    const secret = await admin.collection('secrets').create({ value: 's3cret' });
    for (const pb of [bob, server.client()]) {
      for (const fn of [
        () => pb.collection('secrets').getList(1, 30),
        () => pb.collection('secrets').getOne(secret.id),
        () => pb.collection('secrets').create({ value: 'x' }),
        () => pb.collection('secrets').update(secret.id, { value: 'x' }),
        () => pb.collection('secrets').delete(secret.id),
      ]) {
        assert.deepEqual((await expectError(fn, 403)).response, SUPERUSERS_ONLY);
      }
    }
    assert.equal((await admin.collection('secrets').getOne(secret.id)).value, 's3cret');

    // expanding a relation whose target fails its viewRule → silently not expanded, `expand: {}`
    await admin.collections.create({
      name: 'refs',
      listRule: '',
      viewRule: '',
      fields: [{ name: 'note', type: 'relation', collectionId: (await admin.collections.getOne('notes')).id, maxSelect: 1 }],
    });
    const ref = await admin.collection('refs').create({ note: aliceNote.id });
    assert.equal((await alice.collection('refs').getOne(ref.id, { expand: 'note' })).expand.note.id, aliceNote.id);
    const bobRef = await bob.collection('refs').getOne(ref.id, { expand: 'note' });
    assert.deepEqual(bobRef.expand, {});
    assert.equal(bobRef.note, aliceNote.id, 'the raw relation id is still visible');

    // superusers bypass non-null rules too
    const adminNotes = await admin.collection('notes').getList(1, 30);
    assert.equal(adminNotes.totalItems, 2);
  });

  test('unique index violation → validation_not_unique', T, async () => {
    await alice.collection('items').create({ title: 'unique-1' });
    const err = await expectError(() => bob.collection('items').create({ title: 'unique-1' }), 400);
    assert.deepEqual(err.response, {
      data: { title: { code: 'validation_not_unique', message: 'Value must be unique.' } },
      message: 'Failed to create record.',
      status: 400,
    });
    const other = await bob.collection('items').create({ title: 'unique-2' });
    const upd = await expectError(() => bob.collection('items').update(other.id, { title: 'unique-1' }), 400);
    assert.deepEqual(upd.response, {
      data: { title: { code: 'validation_not_unique', message: 'Value must be unique.' } },
      message: 'Failed to update record.',
      status: 400,
    });
    // duplicate custom id
    const withId = await alice.collection('items').create({ id: 'customid0000001', title: 'custom id' });
    assert.equal(withId.id, 'customid0000001');
    const dupId = await expectError(
      () => alice.collection('items').create({ id: 'customid0000001', title: 'custom id 2' }),
      400,
    );
    assert.equal(dupId.response.data.id.code, 'validation_not_unique');
  });

  test('batch: disabled by default (403), atomic when one op fails, ok otherwise', T, async () => {
    const countBatch = async () =>
      (await admin.collection('items').getList(1, 1, { filter: 'title ~ "batch-"' })).totalItems;

    const b0 = alice.createBatch();
    b0.collection('items').create({ title: 'batch-0' });
    const disabled = await expectError(() => b0.send(), 403);
    assert.deepEqual(disabled.response, { data: {}, message: 'Batch requests are not allowed.', status: 403 });

    const settings = await admin.settings.update({ batch: { enabled: true, maxRequests: 50, timeout: 3 } });
    assert.equal(settings.batch.enabled, true);

    const existing = await alice.collection('items').create({ title: 'batch-existing', count: 1 });

    const b1 = alice.createBatch();
    b1.collection('items').create({ title: 'batch-1' });
    b1.collection('items').update(existing.id, { count: 99 });
    b1.collection('items').create({ title: '' }); // fails: required
    b1.collection('items').create({ title: 'batch-3' });
    const failed = await expectError(() => b1.send(), 400);
    assert.equal(failed.response.message, 'Batch transaction failed.');
    assert.deepEqual(Object.keys(failed.response.data.requests), ['2']);
    assert.deepEqual(failed.response.data.requests['2'], {
      code: 'batch_request_failed',
      message: 'Batch request failed.',
      response: {
        data: { title: { code: 'validation_required', message: 'Cannot be blank.' } },
        message: 'Failed to create record.',
        status: 400,
      },
    });
    assert.equal(await countBatch(), 1, 'nothing from the failed batch was committed');
    assert.equal((await alice.collection('items').getOne(existing.id)).count, 1, 'update rolled back');

    const toDelete = await alice.collection('items').create({ title: 'batch-del' });
    const b2 = alice.createBatch();
    b2.collection('items').create({ title: 'batch-ok-1' });
    b2.collection('items').update(existing.id, { 'count+': 1 }, { fields: 'id,count' });
    b2.collection('items').delete(toDelete.id);
    b2.collection('items').upsert({ id: 'upsertitem00001', title: 'batch-upserted' });
    const res = await b2.send();
    assert.equal(res.length, 4);
    assert.equal(res[0].status, 200);
    assert.equal(res[0].body.title, 'batch-ok-1');
    assert.deepEqual(res[1], { status: 200, body: { id: existing.id, count: 2 } });
    assert.deepEqual(res[2], { status: 204, body: null });
    assert.equal(res[3].status, 200);
    assert.equal(res[3].body.id, 'upsertitem00001');
    assert.equal((await alice.collection('items').getOne('upsertitem00001')).title, 'batch-upserted');

    const empty = alice.createBatch();
    const emptyErr = await expectError(() => empty.send(), 400);
    assert.deepEqual(emptyErr.response, {
      data: { requests: { code: 'validation_required', message: 'Cannot be blank.' } },
      message: 'Invalid batch request data.',
      status: 400,
    });

    // rules apply per sub-request: a null-rule collection fails the whole batch
    const b3 = bob.createBatch();
    b3.collection('notes').create({ body: 'ok', owner: bobU.record.id });
    b3.collection('secrets').create({ value: 'nope' });
    const ruleErr = await expectError(() => b3.send(), 400);
    assert.deepEqual(ruleErr.response, {
      data: {
        requests: {
          1: {
            code: 'batch_request_failed',
            message: 'Batch request failed.',
            response: { data: {}, message: 'Only superusers can perform this action.', status: 403 },
          },
        },
      },
      message: 'Batch transaction failed.',
      status: 400,
    });
    assert.equal((await bob.collection('notes').getList(1, 30)).totalItems, 1, 'note creation rolled back');
  });
});
