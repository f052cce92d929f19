// Files with the official JS SDK: FormData with Blob/File, modifiers, pb.files.getURL,
// protected files with pb.files.getToken, and sign-in with FormData (issue #15).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, signUp } from './harness.mjs';

const T = { timeout: 20_000 };

// A 2x1 PNG.
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000002000000010802000000' +
    '7b40e8dd0000000c49444154789c63f8cfc00000030101' +
    '00c9fe92ef0000000049454e44ae426082',
  'hex',
);

/** `<prefix>_<10 random [a-z0-9]><ext>`, PocketBase's stored name. */
function assertStoredName(name, prefix, ext) {
  assert.match(name, new RegExp(`^${prefix}_[a-z0-9]{10}${ext.replace('.', '\\.')}$`), name);
}

describe('files', { timeout: 120_000 }, () => {
  let server;
  let admin;
  let alice;

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await admin.collections.create({
      name: 'docs',
      listRule: '',
      viewRule: '@request.auth.id != ""',
      createRule: '',
      updateRule: '',
      deleteRule: '',
      fields: [
        { name: 'title', type: 'text' },
        { name: 'doc', type: 'file', maxSelect: 1, maxSize: 1000 },
        { name: 'gallery', type: 'file', maxSelect: 3, mimeTypes: ['image/png'], thumbs: ['50x50'] },
        { name: 'secret', type: 'file', maxSelect: 1, protected: true },
      ],
    });
    const user = await signUp(server, 'alice');
    alice = server.client();
    await alice.collection('users').authWithPassword(user.email, user.password);
  });
  after(async () => {
    await server?.stop();
  });

  let record;

  test('create with FormData (Blob and File), download with pb.files.getURL', T, async () => {
    const form = new FormData();
    form.append('title', 'with files');
    form.append('doc', new Blob(['hello world\n'], { type: 'text/plain' }), 'Hello World.txt');
    form.append('gallery', new Blob([PNG], { type: 'image/png' }), 'red.png');
    form.append('secret', new File(['top secret'], 'secret.txt'));
    record = await alice.collection('docs').create(form);
    assert.equal(record.title, 'with files');
    assertStoredName(record.doc, 'hello_world', '.txt');
    assert.equal(record.gallery.length, 1);
    assertStoredName(record.gallery[0], 'red', '.png');
    assertStoredName(record.secret, 'secret', '.txt');

    const url = alice.files.getURL(record, record.doc);
    assert.ok(url.includes(`/api/files/${record.collectionId}/${record.id}/${record.doc}`), url);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello world\n');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="${record.doc}"`);

    const png = await fetch(alice.files.getURL(record, record.gallery[0], { thumb: '100x100' }));
    assert.equal(png.status, 200);
    assert.equal(png.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await png.arrayBuffer()), PNG);
    const dl = await fetch(alice.files.getURL(record, record.gallery[0], { download: true }));
    assert.equal(dl.headers.get('content-disposition'), `attachment; filename="${record.gallery[0]}"`);
  });

  test('plain object with Blob values, append and remove with modifiers', T, async () => {
    const updated = await alice.collection('docs').update(record.id, {
      'gallery+': [new Blob([PNG]), new Blob([PNG])],
    });
    assert.equal(updated.gallery.length, 3);
    assert.equal(updated.gallery[0], record.gallery[0]);
    const removed = await alice.collection('docs').update(record.id, { 'gallery-': [record.gallery[0]] });
    assert.deepEqual(removed.gallery, updated.gallery.slice(1));
    const gone = await fetch(alice.files.getURL(record, record.gallery[0]));
    assert.equal(gone.status, 404);
    const cleared = await alice.collection('docs').update(record.id, { doc: null });
    assert.equal(cleared.doc, '');
  });

  test('validation: forged MIME type, size limit, unknown names', T, async () => {
    const forged = new FormData();
    forged.append('gallery', new Blob(['not a png'], { type: 'image/png' }), 'fake.png');
    const err = await expectError(() => alice.collection('docs').create(forged), 400);
    assert.equal(err.response.data.gallery.code, 'validation_invalid_mime_type');
    const big = new FormData();
    big.append('doc', new Blob([Buffer.alloc(2000, 120)]), 'big.bin');
    const err2 = await expectError(() => alice.collection('docs').create(big), 400);
    assert.equal(err2.response.data.doc.code, 'validation_file_size_limit');
    assert.deepEqual(err2.response.data.doc.params, { file: 'big.bin', maxSize: 1000 });
    const err3 = await expectError(
      () => alice.collection('docs').update(record.id, { doc: 'nonexistent.txt' }),
      400,
    );
    assert.equal(err3.response.data.doc.code, 'validation_invalid_file');
  });

  test('protected files need pb.files.getToken', T, async () => {
    const noToken = await fetch(alice.files.getURL(record, record.secret));
    assert.equal(noToken.status, 404);
    const token = await alice.files.getToken();
    const res = await fetch(alice.files.getURL(record, record.secret, { token }));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'top secret');
    const guest = server.client();
    await expectError(() => guest.files.getToken(), 401);
  });

  test('sign in with FormData', T, async () => {
    const form = new FormData();
    form.append('identity', 'alice@example.com');
    form.append('password', 'alicepass123');
    const pb = server.client();
    const auth = await pb.send('/api/collections/users/auth-with-password', { method: 'POST', body: form });
    assert.ok(auth.token);
    assert.equal(auth.record.email, 'alice@example.com');
  });
});
