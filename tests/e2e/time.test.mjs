// Trash, revert, asOf and realtime for views through the official JS SDK (pocketlog-only):
// a user restores their own deleted message under a `restoreRule`, reverts an edit with
// `pb.send(…/revert)`, reads a past page with `getList(…, { asOf })` and a past record with
// `getOne(…, { asOf })`, and a view subscription's callback receives the `refresh` action
// (the SDK passes an unknown action through) with the commit's position.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signUp, loginAs, seedChatSchema, waitFor, expectError, pocketlogOnly } from './harness.mjs';

const T = { timeout: 60_000 };

describe('trash, revert, asOf and view realtime', { timeout: 180_000, skip: pocketlogOnly }, () => {
  let server;
  let admin;
  let aliceU;
  let alice;
  const clients = [];

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await seedChatSchema(admin);
    await admin.collections.update('messages', { restoreRule: 'user = @request.auth.id' });
    await admin.collections.create({ name: 'message_texts', type: 'view', listRule: '', viewRule: '', viewQuery: 'SELECT id, text FROM messages' });
    aliceU = await signUp(server, 'alice');
    alice = await loginAs(server, aliceU);
    clients.push(alice);
  });

  after(async () => {
    for (const pb of clients) {
      try {
        await pb.realtime.unsubscribe();
      } catch {
        /* ignore */
      }
    }
    await server?.stop();
  });

  test('restore from the trash and revert an edit under the restoreRule', T, async () => {
    const msg = await alice.collection('messages').create({ text: 'first words', user: alice.authStore.record.id });
    await alice.collection('messages').delete(msg.id);
    const trash = await alice.send('/api/collections/messages/trash', {});
    assert.deepEqual(trash.items.map((i) => i.id), [msg.id]);
    const guest = server.client();
    assert.deepEqual((await guest.send('/api/collections/messages/trash', {})).items, []);
    const restored = await alice.send(`/api/collections/messages/records/${msg.id}/restore`, { method: 'POST' });
    assert.equal(restored.record.text, 'first words');
    const history = await admin.send(`/api/collections/messages/records/${msg.id}/history`, {});
    const original = history.items.at(-1).seq;
    await alice.collection('messages').update(msg.id, { text: 'second words' });
    const reverted = await alice.send(`/api/collections/messages/records/${msg.id}/revert`, { method: 'POST', body: { position: original } });
    assert.equal(reverted.record.text, 'first words');
    assert.equal((await alice.collection('messages').getOne(msg.id)).text, 'first words');
    await expectError(() => guest.send(`/api/collections/messages/records/${msg.id}/revert`, { method: 'POST', body: { position: original } }), 404);
  });

  test('getList and getOne with asOf read the past under today\'s rules', T, async () => {
    const m = await alice.collection('messages').create({ text: 'before', user: alice.authStore.record.id });
    const position = (await admin.send(`/api/collections/messages/records/${m.id}/history`, {})).items.at(-1).seq;
    await alice.collection('messages').update(m.id, { text: 'after' });
    const extra = await alice.collection('messages').create({ text: 'later one', user: alice.authStore.record.id });
    const past = await alice.collection('messages').getList(1, 50, { asOf: position, filter: `id = "${m.id}" || id = "${extra.id}"` });
    assert.deepEqual(past.items.map((i) => i.text), ['before']);
    assert.equal((await alice.collection('messages').getOne(m.id, { asOf: position })).text, 'before');
    assert.equal((await alice.collection('messages').getOne(m.id)).text, 'after');
    const err = await expectError(() => alice.collection('messages').getList(1, 5, { asOf: 'not a time' }), 400);
    assert.match(err.response.message, /asOf/);
  });

  test('a view subscription gets a refresh with the position when its source changes', T, async () => {
    const events = [];
    await alice.collection('message_texts').subscribe('*', (e) => events.push(e));
    const m = await alice.collection('messages').create({ text: 'ping', user: alice.authStore.record.id });
    await waitFor(() => events.length >= 1, { what: 'a refresh event' });
    assert.equal(events[0].action, 'refresh');
    assert.equal(events[0].record.collectionName, 'message_texts');
    const history = await admin.send(`/api/collections/messages/records/${m.id}/history`, {});
    assert.equal(events[0].position, history.items[0].seq);
  });
});
