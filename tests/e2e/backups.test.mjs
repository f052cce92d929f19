// Backups API (api.md §8) through the JS SDK.
//
// List / create / download (file token) / upload / delete / bad names / access control run on
// both servers. Restore and point-in-time backups (`"at"`) are pocketlog-only: pocketlog's
// archives are its own format (tar with a `.zip` key), its `create` accepts `at`, and its restore
// re-execs the same process on the restored state.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectError, signUp, sleep, pocketlogOnly, IS_REFERENCE } from './harness.mjs';

const T = { timeout: 60_000 };
const RESTORE_T = { timeout: 90_000, skip: pocketlogOnly };
const MODIFIED_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('backups', { timeout: 420_000 }, () => {
  let server;
  let admin;
  let userU;
  let user;

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await admin.collections.create({
      name: 'notes',
      type: 'base',
      listRule: '',
      viewRule: '',
      fields: [
        { name: 'title', type: 'text', required: true },
        { name: 'n', type: 'number' },
      ],
    });
    const users = await admin.collections.getOne('users');
    await admin.collections.update(users.id, { createRule: '' });
    userU = await signUp(server, 'bkuser');
    user = await loginAs(server, userU);
  });
  after(async () => {
    await server?.stop();
  });

  const loginAs = async (srv, u) => {
    const pb = srv.client();
    await pb.collection('users').authWithPassword(u.email, u.password);
    return pb;
  };
  const note = (title, n = 0) => admin.collection('notes').create({ title, n });
  const notes = async (pb = admin) =>
    (await pb.collection('notes').getFullList({ sort: 'title' })).map((r) => ({ id: r.id, title: r.title, n: r.n }));
  const keys = async () => (await admin.backups.getFullList()).map((b) => b.key).sort();

  /** Waits (bounded) until a restore's re-exec is done and /api/health answers 200 again. */
  async function waitRestored(startsBefore) {
    const pid = server.proc.pid;
    const started = () => (server.stderr.match(/Server started at/g) || []).length;
    // 1. the old process stops serving and the new image starts (same PID).
    const deadline = Date.now() + 30_000;
    let sawDown = false;
    while (Date.now() < deadline && !sawDown && started() <= startsBefore) {
      try {
        const res = await server.fetch('/api/health', { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status !== 200) sawDown = true;
      } catch {
        sawDown = true;
      }
      if (!sawDown) await sleep(20);
    }
    assert.ok(sawDown || started() > startsBefore, 'the server restarts after the restore');
    // 2. it comes back on the same port.
    let healthy = false;
    while (Date.now() < deadline && !healthy) {
      try {
        const res = await server.fetch('/api/health', { signal: AbortSignal.timeout(1000) });
        const body = await res.json().catch(() => null);
        healthy = res.status === 200 && body?.code === 200;
      } catch {
        // still restarting
      }
      if (!healthy) await sleep(100);
    }
    assert.ok(healthy, `server back within 30 s after restore\nstderr:\n${server.stderr}`);
    assert.equal(server.proc.exitCode, null, 'the server process did not exit');
    assert.equal(server.proc.signalCode, null);
    assert.equal(server.proc.pid, pid, 'same PID (re-exec)');
    assert.match(server.stderr, /Applied a staged backup restore/);
  }

  async function restore(key) {
    const startsBefore = (server.stderr.match(/Server started at/g) || []).length;
    assert.equal(await admin.backups.restore(key), true);
    await waitRestored(startsBefore);
    // the superuser can log in again
    admin = await server.admin();
    assert.equal(admin.authStore.isValid, true);
    user = await loginAs(server, userU);
  }

  test('create, list, download with a file token, upload, delete (SDK)', T, async () => {
    assert.deepEqual(await admin.backups.getFullList(), []);
    await note('alpha', 1);
    await note('beta', 2);
    assert.equal(await admin.backups.create('b1.zip'), true);

    const list = await admin.backups.getFullList();
    assert.equal(list.length, 1);
    const [b1] = list;
    assert.equal(b1.key, 'b1.zip');
    assert.equal(typeof b1.size, 'number');
    assert.ok(b1.size > 0, `size ${b1.size}`);
    assert.match(b1.modified, MODIFIED_RE);
    const modifiedMs = Date.parse(b1.modified.replace(' ', 'T'));
    assert.ok(Math.abs(Date.now() - modifiedMs) < 120_000, `modified ${b1.modified} is recent`);

    // download with a superuser file token
    const token = await admin.files.getToken();
    assert.ok(token);
    const url = admin.backups.getDownloadURL(token, 'b1.zip');
    assert.ok(url.startsWith(`${server.url}/api/backups/b1.zip?`), url);
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/zip');
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="b1.zip"');
    const archive = Buffer.from(await res.arrayBuffer());
    assert.equal(archive.length, b1.size);

    // without a token, or with a bad one: 403
    for (const q of ['', '?token=', '?token=nope', `?token=${token.slice(0, -2)}xx`]) {
      const denied = await server.fetch(`/api/backups/b1.zip${q}`);
      assert.equal(denied.status, 403, `download with query ${JSON.stringify(q)}`);
      const body = await denied.json();
      assert.equal(body.message, 'Insufficient permissions to access the resource.');
    }
    // Not asserted (pocketlog bug, see the report): PocketBase and api.md §8 also answer 403 to
    // `?token=<superuser AUTH token>` and to an `Authorization` header without `?token=`;
    // pocketlog serves the archive (200) in both cases.
    // a regular user's file token is not enough
    const userFileToken = await user.files.getToken();
    const denied = await fetch(user.backups.getDownloadURL(userFileToken, 'b1.zip'), {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(denied.status, 403);
    await denied.arrayBuffer();

    // upload the downloaded archive under a new name: listed, same size
    const uploaded = new File([archive], 'up1.zip', { type: 'application/zip' });
    assert.equal(await admin.backups.upload({ file: uploaded }), true);
    assert.deepEqual(await keys(), ['b1.zip', 'up1.zip']);
    const up1 = (await admin.backups.getFullList()).find((b) => b.key === 'up1.zip');
    assert.equal(up1.size, b1.size);
    // uploading something that is not an archive: 400, not listed
    const junk = await expectError(
      () => admin.backups.upload({ file: new File(['hello, not an archive'], 'junk.zip') }),
      400,
    );
    assert.equal(junk.response.data.file.code, 'validation_invalid_mime_type');
    const text = await expectError(() => admin.backups.upload({ file: new File(['hello'], 'hello.txt') }), 400);
    assert.equal(text.response.data.file.code, 'validation_invalid_mime_type');
    assert.deepEqual(await keys(), ['b1.zip', 'up1.zip']);

    // delete removes it; deleting again is a 400; downloading it is no longer possible
    assert.equal(await admin.backups.delete('up1.zip'), true);
    assert.deepEqual(await keys(), ['b1.zip']);
    const again = await expectError(() => admin.backups.delete('up1.zip'), 400);
    assert.match(again.response.message, /^Invalid or already deleted backup file\./);
    const gone = await fetch(admin.backups.getDownloadURL(await admin.files.getToken(), 'up1.zip'), {
      signal: AbortSignal.timeout(10_000),
    });
    assert.notEqual(gone.status, 200);
    await gone.arrayBuffer();
    // restoring a missing key
    const missing = await expectError(() => admin.backups.restore('nope.zip'), 400);
    assert.equal(missing.response.message, 'Missing or invalid backup file.');
  });

  test('bad backup names are rejected with 400', T, async () => {
    const bad = ['B1.zip', 'b1.tar', 'b1', '.zip', 'a b.zip', 'a.b.zip', '../x.zip', 'x/y.zip', 'ü.zip'];
    for (const name of bad) {
      const err = await expectError(() => admin.backups.create(name), 400);
      assert.equal(err.response.data?.name?.code, 'validation_match_invalid', `name ${JSON.stringify(name)}: ${JSON.stringify(err.response)}`);
    }
    // 151 characters: 400 on `name` (PocketBase's code is validation_length_out_of_range,
    // pocketlog answers validation_match_invalid; only the field is asserted)
    const tooLong = await expectError(() => admin.backups.create(`${'a'.repeat(147)}.zip`), 400);
    assert.ok(tooLong.response.data?.name?.code, JSON.stringify(tooLong.response));
    // 150 characters is still fine
    const longest = `${'a'.repeat(146)}.zip`;
    assert.equal(longest.length, 150);
    assert.equal(await admin.backups.create(longest), true);
    assert.ok((await keys()).includes(longest));
    assert.equal(await admin.backups.delete(longest), true);
    // an existing name
    const dup = await expectError(() => admin.backups.create('b1.zip'), 400);
    assert.ok(dup.response.data?.name, JSON.stringify(dup.response));
    assert.deepEqual(await keys(), ['b1.zip']);
  });

  test('default name when none is given', T, async () => {
    const before = await keys();
    assert.equal(await admin.backups.create(''), true);
    const added = (await keys()).filter((k) => !before.includes(k));
    assert.equal(added.length, 1);
    assert.match(added[0], /^pb_backup_[a-z0-9_]+_\d{14}\.zip$/);
    assert.equal(await admin.backups.delete(added[0]), true);
  });

  test('backups are superuser-only', T, async () => {
    const guest = server.client();
    const g = await expectError(() => guest.backups.getFullList(), 401);
    assert.equal(g.response.message, 'The request requires valid record authorization token.');
    await expectError(() => guest.backups.create('g.zip'), 401);
    await expectError(() => guest.backups.delete('b1.zip'), 401);
    await expectError(() => guest.backups.restore('b1.zip'), 401);
    const u = await expectError(() => user.backups.getFullList(), 403);
    assert.equal(u.response.message, 'The authorized record is not allowed to perform this action.');
    await expectError(() => user.backups.create('u.zip'), 403);
    await expectError(() => user.backups.delete('b1.zip'), 403);
    await expectError(() => user.backups.restore('b1.zip'), 403);
    await expectError(() => user.backups.upload({ file: new File(['x'], 'u.zip') }), 403);
    assert.deepEqual(await keys(), ['b1.zip']);
  });

  test('restore b1.zip: later writes are gone, earlier ones are back, same PID', RESTORE_T, async () => {
    const atBackup = await notes();
    assert.deepEqual(
      atBackup.map((r) => [r.title, r.n]),
      [
        ['alpha', 1],
        ['beta', 2],
      ],
    );
    // more writes after the backup: a new record, an update, a delete, a settings change
    const gamma = await note('gamma', 3);
    await admin.collection('notes').update(atBackup[0].id, { n: 100 });
    await admin.collection('notes').delete(atBackup[1].id);
    await admin.settings.update({ meta: { appName: 'AfterBackup' } });
    assert.deepEqual(
      (await notes()).map((r) => [r.title, r.n]),
      [
        ['alpha', 100],
        ['gamma', 3],
      ],
    );

    await restore('b1.zip');

    assert.deepEqual(await notes(), atBackup);
    await expectError(() => admin.collection('notes').getOne(gamma.id), 404);
    assert.notEqual((await admin.settings.getAll()).meta.appName, 'AfterBackup');
    // other clients work too (the user existed at backup time)
    assert.deepEqual(await notes(user), atBackup);
    // the backups dir is not part of the restore
    assert.deepEqual(await keys(), ['b1.zip']);
    // and the server takes writes again
    const delta = await note('delta', 4);
    assert.equal((await admin.collection('notes').getOne(delta.id)).title, 'delta');
  });

  test('point-in-time backup (at: seq) restores exactly the state at that seq', RESTORE_T, async () => {
    const p1 = await note('pit1', 1);
    const p2 = await note('pit2', 2);
    const hist = await admin.send(`/api/collections/notes/records/${p2.id}/history`, {});
    const seq = hist.items.at(-1).seq;
    assert.equal(hist.items.at(-1).action, 'create');
    const expected = await notes();
    // later changes that must not be in the backup
    await admin.collection('notes').update(p1.id, { n: 111 });
    await admin.collection('notes').delete(p2.id);
    const p3 = await note('pit3', 3);

    // bad restore points: 400, nothing created
    for (const at of ['yesterday', '2025-13-45T00:00:00Z', -1, { seq }, [seq], seq + 1_000_000]) {
      const err = await expectError(
        () => admin.send('/api/backups', { method: 'POST', body: { name: 'bad_at.zip', at } }),
        400,
      );
      assert.ok(err.response.message, JSON.stringify(err.response));
    }
    assert.ok(!(await keys()).includes('bad_at.zip'));

    await admin.send('/api/backups', { method: 'POST', body: { name: 'pit.zip', at: seq } });
    // the seq as a string of digits is accepted, too
    await admin.send('/api/backups', { method: 'POST', body: { name: 'pit_str.zip', at: String(seq) } });
    const list = await admin.backups.getFullList();
    const pit = list.find((b) => b.key === 'pit.zip');
    const pitStr = list.find((b) => b.key === 'pit_str.zip');
    assert.ok(pit && pit.size > 0);
    assert.ok(pitStr && pitStr.size > 0);

    await restore('pit.zip');

    assert.deepEqual(await notes(), expected);
    assert.equal((await admin.collection('notes').getOne(p1.id)).n, 1);
    assert.equal((await admin.collection('notes').getOne(p2.id)).title, 'pit2');
    await expectError(() => admin.collection('notes').getOne(p3.id), 404);
    // the history of the restored record ends at the restore point
    const after = await admin.send(`/api/collections/notes/records/${p2.id}/history`, {});
    assert.deepEqual(
      after.items.map((i) => [i.seq, i.action]),
      [[seq, 'create']],
    );

    await restore('pit_str.zip');
    assert.deepEqual(await notes(), expected);
  });

  test('point-in-time backup (at: RFC 3339 time)', RESTORE_T, async () => {
    const t1 = await note('time1', 1);
    await sleep(50);
    const at = new Date().toISOString();
    await sleep(50);
    const expected = await notes();
    await admin.collection('notes').update(t1.id, { n: 222 });
    const t2 = await note('time2', 2);

    await admin.send('/api/backups', { method: 'POST', body: { name: 'pit_time.zip', at } });
    await restore('pit_time.zip');

    assert.deepEqual(await notes(), expected);
    assert.equal((await admin.collection('notes').getOne(t1.id)).n, 1);
    await expectError(() => admin.collection('notes').getOne(t2.id), 404);
  });

  test('delete removes a backup (after restores)', T, async () => {
    const before = await keys();
    assert.ok(before.includes('b1.zip'));
    assert.equal(await admin.backups.delete('b1.zip'), true);
    const afterDelete = await keys();
    assert.ok(!afterDelete.includes('b1.zip'));
    assert.equal(afterDelete.length, before.length - 1);
    await expectError(() => admin.backups.delete('b1.zip'), 400);
    await expectError(() => admin.backups.restore('b1.zip'), 400);
    if (!IS_REFERENCE) {
      // path-like keys are refused and touch nothing
      const traversal = await server.fetch('/api/backups/..%2Fdata.db', {
        method: 'DELETE',
        headers: { Authorization: admin.authStore.token },
      });
      assert.equal(traversal.status, 400);
      await traversal.arrayBuffer();
      assert.ok((await notes()).length > 0);
    }
  });
});
