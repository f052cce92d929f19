// Files in S3 with the official JS SDK (issue #15): the server stores record files in a real
// S3-compatible server (moto, `python3 -m moto.server`, started here on a free loopback port;
// .ci/run installs moto[server]). FormData with File/Blob, pb.files.getURL, a protected file
// with pb.files.getToken, a thumbnail, a >8 MiB upload (S3 multipart upload) round-tripping
// byte-identical, and virtual-hosted-style addressing that cannot resolve refused clearly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import zlib from 'node:zlib';
import { startServer, expectError, waitFor } from './harness.mjs';

const T = { timeout: 60_000 };
const BUCKET = 'files';

// A 2x1 PNG.
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000002000000010802000000' +
    '7b40e8dd0000000c49444154789c63f8cfc00000030101' +
    '00c9fe92ef0000000049454e44ae426082',
  'hex',
);

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

/** A `w`x`h` RGB PNG (a gradient). */
function png(w, h) {
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(w, 0);
  header.writeUInt32BE(h, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const at = y * (1 + 3 * w) + 1 + 3 * x;
      raw[at] = x & 0xff;
      raw[at + 1] = y & 0xff;
      raw[at + 2] = (x + y) & 0xff;
    }
  }
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
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

/** Starts moto on a free loopback port; resolves once it answers. */
async function startMoto() {
  const port = await freePort();
  const proc = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      try {
        return (await fetch(endpoint)).ok;
      } catch {
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'moto to start (is moto[server] installed?)' },
  );
  const created = await fetch(`${endpoint}/${BUCKET}`, { method: 'PUT' });
  assert.ok(created.ok, 'create the bucket');
  return { endpoint, stop: () => proc.kill() };
}

/** The keys in the bucket (moto answers unsigned listings). */
async function bucketKeys(moto) {
  const text = await (await fetch(`${moto.endpoint}/${BUCKET}?list-type=2`)).text();
  return [...text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]).sort();
}

function s3Settings(endpoint, forcePathStyle) {
  return {
    enabled: true,
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint,
    accessKey: 'test-key',
    secret: 'test-secret',
    forcePathStyle,
  };
}

describe('files in S3', { timeout: 300_000 }, () => {
  let moto;
  let server;
  let admin;

  before(async () => {
    moto = await startMoto();
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
        { name: 'doc', type: 'file', maxSelect: 1, maxSize: 20 * 1024 * 1024 },
        { name: 'gallery', type: 'file', maxSelect: 3, mimeTypes: ['image/png'], thumbs: ['50x50'] },
        { name: 'secret', type: 'file', maxSelect: 1, protected: true },
      ],
    });
    await admin.settings.update({ s3: s3Settings(moto.endpoint, true) });
  });
  after(async () => {
    await server?.stop();
    moto?.stop();
  });

  let record;

  test('FormData upload lands in the bucket; pb.files.getURL reads it back', T, async () => {
    const form = new FormData();
    form.append('title', 'in s3');
    form.append('doc', new Blob(['hello from s3\n'], { type: 'text/plain' }), 'hello.txt');
    form.append('gallery', new File([png(120, 80)], 'red.png', { type: 'image/png' }));
    form.append('secret', new File(['top secret'], 'secret.txt'));
    record = await admin.collection('docs').create(form);
    const keys = await bucketKeys(moto);
    for (const name of [record.doc, record.gallery[0], record.secret]) {
      assert.ok(keys.includes(`${record.collectionId}/${record.id}/${name}`), `${name} in ${keys}`);
    }
    const res = await fetch(admin.files.getURL(record, record.doc));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello from s3\n');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  });

  test('a thumbnail of a file in S3', T, async () => {
    const res = await fetch(admin.files.getURL(record, record.gallery[0], { thumb: '50x50' }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const thumb = Buffer.from(await res.arrayBuffer());
    // A PNG whose IHDR says 50x50 (a 120x80 image cropped to the center, as the reference).
    assert.deepEqual(thumb.subarray(0, 8), PNG.subarray(0, 8));
    assert.equal(thumb.readUInt32BE(16), 50);
    assert.equal(thumb.readUInt32BE(20), 50);
    const thumbKey = `${record.collectionId}/${record.id}/thumbs_${record.gallery[0]}/50x50_${record.gallery[0]}`;
    await waitFor(async () => (await bucketKeys(moto)).includes(thumbKey), {
      what: 'the thumbnail cached in the bucket',
    });
  });

  test('a protected file in S3 needs pb.files.getToken', T, async () => {
    // Non-protected files are public; a protected one needs a file token (the view rule
    // here wants a signed-in caller).
    const guest = server.client();
    assert.equal((await fetch(guest.files.getURL(record, record.doc))).status, 200);
    const noToken = await fetch(guest.files.getURL(record, record.secret));
    assert.equal(noToken.status, 404);
    const token = await admin.files.getToken();
    const res = await fetch(admin.files.getURL(record, record.secret, { token }));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'top secret');
  });

  test('a >8 MiB upload (S3 multipart) round-trips byte-identical', T, async () => {
    const size = 9 * 1024 * 1024 + 123;
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 10)) & 0xff;
    const big = await admin.collection('docs').create({ doc: new Blob([bytes]) });
    const res = await fetch(admin.files.getURL(big, big.doc));
    assert.equal(res.status, 200);
    const back = Buffer.from(await res.arrayBuffer());
    assert.equal(back.length, size);
    assert.ok(back.equals(bytes), 'byte-identical');
    // A range from the middle, as a resuming client asks.
    const part = await fetch(admin.files.getURL(big, big.doc), { headers: { range: 'bytes=8388600-8388615' } });
    assert.equal(part.status, 206);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(8388600, 8388616)));
  });

  test('virtual-hosted-style addressing that cannot resolve is refused clearly', T, async () => {
    // forcePathStyle=false puts the bucket in the host name (files.127.0.0.1), which does not
    // resolve: the connection test and uploads answer 400 at once, and nothing is stored.
    const before = await bucketKeys(moto);
    // Path style: the connection test passes.
    await admin.send('/api/settings/test/s3', { method: 'POST', body: { filesystem: 'storage' } });
    const started = Date.now();
    await admin.settings.update({ s3: s3Settings(moto.endpoint, false) });
    const tested = await expectError(
      () => admin.send('/api/settings/test/s3', { method: 'POST', body: { filesystem: 'storage' } }),
      400,
    );
    assert.match(tested.response.message, /S3/i);
    const form = new FormData();
    form.append('doc', new Blob(['nowhere']), 'nowhere.txt');
    const refused = await expectError(() => admin.collection('docs').create(form), 400);
    assert.equal(refused.response.message, 'Failed to create record.');
    assert.ok(Date.now() - started < 30_000, 'no hang');
    assert.deepEqual(await bucketKeys(moto), before, 'nothing stored');
    const list = await admin.collection('docs').getFullList();
    assert.ok(!list.some((r) => r.doc && r.doc.startsWith('nowhere')), 'no record');
    // Path style again: uploads work.
    await admin.settings.update({ s3: s3Settings(moto.endpoint, true) });
    const ok = await admin.collection('docs').create({ doc: new Blob(['back']) });
    assert.equal(await (await fetch(admin.files.getURL(ok, ok.doc))).text(), 'back');
  });
});

