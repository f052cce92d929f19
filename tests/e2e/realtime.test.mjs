// Realtime (SSE) through the SDK's RealtimeService + the `eventsource` polyfill.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signUp, loginAs, seedChatSchema, waitFor, sleep } from './harness.mjs';

const T = { timeout: 30_000 };

function collector() {
  const events = [];
  const cb = (e) => events.push(e);
  return { events, cb };
}

describe('realtime', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let aliceU;
  let bobU;
  let alice;
  let bob;
  const clients = [];

  // every client that may open an EventSource goes through here so `after` can close it
  const track = (pb) => {
    clients.push(pb);
    return pb;
  };

  before(async () => {
    server = await startServer();
    admin = await server.admin();
    await seedChatSchema(admin);
    await admin.collections.create({
      name: 'notes',
      listRule: 'owner = @request.auth.id',
      viewRule: '',
      createRule: '@request.auth.id != "" && owner = @request.auth.id',
      updateRule: 'owner = @request.auth.id',
      deleteRule: 'owner = @request.auth.id',
      fields: [
        { name: 'body', type: 'text' },
        { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1, required: true },
      ],
    });
    aliceU = await signUp(server, 'alice');
    bobU = await signUp(server, 'bob');
    alice = track(await loginAs(server, aliceU));
    bob = track(await loginAs(server, bobU));
  });

  after(async () => {
    // close all EventSources first, otherwise the SDK would keep reconnecting forever
    for (const pb of clients) {
      try {
        await pb.realtime.unsubscribe();
      } catch {
        /* ignore */
      }
    }
    await server?.stop();
  });

  test("subscribe('*') receives create/update/delete made by another client", T, async () => {
    const { events, cb } = collector();
    const unsubscribe = await alice.collection('messages').subscribe('*', cb);
    assert.equal(typeof unsubscribe, 'function');
    assert.equal(alice.realtime.isConnected, true);
    assert.match(alice.realtime.clientId, /^[A-Za-z0-9]{40}$/);

    const created = await bob.collection('messages').create({ text: 'hello realtime', user: bobU.record.id });
    await waitFor(() => events.length >= 1, { what: 'create event' });
    assert.deepEqual(events[0], { action: 'create', record: created });

    const updated = await bob.collection('messages').update(created.id, { text: 'edited' });
    await waitFor(() => events.length >= 2, { what: 'update event' });
    assert.deepEqual(events[1], { action: 'update', record: updated });

    await bob.collection('messages').delete(created.id);
    await waitFor(() => events.length >= 3, { what: 'delete event' });
    assert.equal(events[2].action, 'delete');
    assert.deepEqual(events[2].record, updated, 'delete carries the last stored snapshot');

    await sleep(200);
    assert.equal(events.length, 3, 'exactly one event per change');
    await unsubscribe();
  });

  test('subscribe options: expand is applied to the event record', T, async () => {
    const { events, cb } = collector();
    const unsubscribe = await alice.collection('messages').subscribe('*', cb, { expand: 'user', fields: 'id,text,expand.user.username' });
    const created = await bob.collection('messages').create({ text: 'with expand', user: bobU.record.id });
    await waitFor(() => events.length >= 1, { what: 'create event' });
    assert.deepEqual(events[0], {
      action: 'create',
      record: { id: created.id, text: 'with expand', expand: { user: { username: 'bob' } } },
    });
    await unsubscribe();
  });

  test('listRule filters events per subscriber; viewRule governs record topics', T, async () => {
    const guest = track(server.client());
    const a = collector();
    const b = collector();
    const g = collector();
    const aRecord = collector();
    await alice.collection('notes').subscribe('*', a.cb);
    await bob.collection('notes').subscribe('*', b.cb);
    await guest.collection('notes').subscribe('*', g.cb);

    const bobNote = await bob.collection('notes').create({ body: 'bob private', owner: bobU.record.id });
    await waitFor(() => b.events.length >= 1, { what: "bob's own event" });
    assert.equal(b.events[0].record.id, bobNote.id);

    // alice's own note is created after bob's: once she has received it, she would also have
    // received bob's note event if it were delivered to her (events are ordered per client).
    const aliceNote = await alice.collection('notes').create({ body: 'alice private', owner: aliceU.record.id });
    await waitFor(() => a.events.length >= 1, { what: "alice's own event" });
    await sleep(150);
    assert.deepEqual(
      a.events.map((e) => [e.action, e.record.id]),
      [['create', aliceNote.id]],
      'alice (listRule fails) does not get bob note events',
    );
    assert.deepEqual(
      b.events.map((e) => e.record.id),
      [bobNote.id],
    );
    assert.deepEqual(g.events, [], 'guest gets nothing');

    // viewRule "" → the record topic passes for alice even though the list topic doesn't
    await alice.collection('notes').subscribe(bobNote.id, aRecord.cb);
    await bob.collection('notes').update(bobNote.id, { body: 'bob private v2' });
    await waitFor(() => aRecord.events.length >= 1 && b.events.length >= 2, { what: 'update events' });
    assert.equal(aRecord.events[0].action, 'update');
    assert.equal(aRecord.events[0].record.body, 'bob private v2');
    await sleep(150);
    assert.equal(a.events.length, 1, 'still nothing on alice notes/*');

    await alice.collection('notes').unsubscribe();
    await bob.collection('notes').unsubscribe();
    await guest.realtime.unsubscribe();
    assert.equal(guest.realtime.isConnected, false);
  });

  test('subscribe(id) only gets that record', T, async () => {
    const m1 = await bob.collection('messages').create({ text: 'first', user: bobU.record.id });
    const m2 = await bob.collection('messages').create({ text: 'second', user: bobU.record.id });
    const one = collector();
    const all = collector();
    await alice.collection('messages').subscribe(m1.id, one.cb);
    await alice.collection('messages').subscribe('*', all.cb);

    await bob.collection('messages').update(m2.id, { text: 'second v2' });
    await bob.collection('messages').update(m1.id, { text: 'first v2' });
    await bob.collection('messages').delete(m1.id);
    await waitFor(() => one.events.length >= 2 && all.events.length >= 3, { what: 'events' });
    await sleep(150);
    assert.deepEqual(
      one.events.map((e) => [e.action, e.record.id, e.record.text]),
      [
        ['update', m1.id, 'first v2'],
        ['delete', m1.id, 'first v2'],
      ],
    );
    assert.deepEqual(
      all.events.map((e) => [e.action, e.record.id]),
      [
        ['update', m2.id],
        ['update', m1.id],
        ['delete', m1.id],
      ],
    );
    await alice.collection('messages').unsubscribe();
    assert.equal(alice.realtime.isConnected, false, 'removing the last listener closes the connection');
  });

  test('unsubscribe() stops delivery', T, async () => {
    const msgs = collector();
    const notes = collector();
    const unsubMessages = await alice.collection('messages').subscribe('*', msgs.cb);
    await alice.collection('notes').subscribe('*', notes.cb);

    await bob.collection('messages').create({ text: 'before unsub', user: bobU.record.id });
    await waitFor(() => msgs.events.length >= 1, { what: 'message event' });

    await unsubMessages();
    assert.equal(alice.realtime.isConnected, true, 'still connected for notes/*');
    await bob.collection('messages').create({ text: 'after unsub', user: bobU.record.id });
    const marker = await alice.collection('notes').create({ body: 'marker', owner: aliceU.record.id });
    await waitFor(() => notes.events.length >= 1, { what: 'marker event' });
    assert.equal(notes.events[0].record.id, marker.id);
    await sleep(150);
    assert.equal(msgs.events.length, 1, 'no message events after unsubscribe');

    await alice.realtime.unsubscribe();
    assert.equal(alice.realtime.isConnected, false);
    await alice.collection('notes').create({ body: 'nobody listens', owner: aliceU.record.id });
    await sleep(150);
    assert.equal(notes.events.length, 1);
  });

  test('subscribe options: filter limits events', T, async () => {
    const { events, cb } = collector();
    await alice.collection('messages').subscribe('*', cb, { filter: 'text ~ "important"' });
    await bob.collection('messages').create({ text: 'boring', user: bobU.record.id });
    const hit = await bob.collection('messages').create({ text: 'very important', user: bobU.record.id });
    await waitFor(() => events.length >= 1, { what: 'filtered event' });
    await sleep(150);
    assert.deepEqual(
      events.map((e) => e.record.id),
      [hit.id],
    );
    await alice.collection('messages').unsubscribe('*');
  });

  test('a password change downgrades the realtime client to guest', T, async () => {
    // members_only-style collection: listRule requires auth
    await admin.collections.create({
      name: 'announcements',
      listRule: '@request.auth.id != ""',
      viewRule: '@request.auth.id != ""',
      fields: [{ name: 'title', type: 'text' }],
    });
    const carolU = await signUp(server, 'carol');
    const carol = track(await loginAs(server, carolU));
    const { events, cb } = collector();
    await carol.collection('announcements').subscribe('*', cb);
    await admin.collection('announcements').create({ title: 'one' });
    await waitFor(() => events.length >= 1, { what: 'first announcement' });

    await carol.collection('users').update(carolU.record.id, {
      oldPassword: carolU.password,
      password: 'carolnewpass1',
      passwordConfirm: 'carolnewpass1',
    });
    await sleep(100);
    await admin.collection('announcements').create({ title: 'two' });
    // marker: messages are public, so a guest subscriber would still get it
    // (the SDK re-POSTs its subscriptions with its now-invalid token = guest; the server has
    // already downgraded the client to guest, so guest→guest is accepted)
    const marker = collector();
    await carol.collection('messages').subscribe('*', marker.cb);
    const m = await bob.collection('messages').create({ text: 'marker', user: bobU.record.id });
    await waitFor(() => marker.events.length >= 1, { what: 'marker event' });
    assert.equal(marker.events[0].record.id, m.id);
    await sleep(100);
    assert.deepEqual(
      events.map((e) => e.record.title),
      ['one'],
      'no more auth-only events after the password change',
    );
    await carol.realtime.unsubscribe();
  });

  test('raw protocol: PB_CONNECT frame, POST /api/realtime errors', T, async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${server.url}/api/realtime`, { signal: ctrl.signal });
    try {
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const reader = res.body.getReader();
      let buf = '';
      const deadline = Date.now() + 5000;
      while (!buf.includes('\n\n') && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += Buffer.from(value).toString();
      }
      const m = buf.match(/^id:([A-Za-z0-9]{40})\nevent:PB_CONNECT\ndata:(.*)\n\n/);
      assert.ok(m, `unexpected first frame: ${JSON.stringify(buf)}`);
      const clientId = m[1];
      assert.deepEqual(JSON.parse(m[2]), { clientId });

      const post = (body, headers = {}) =>
        server.fetch('/api/realtime', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
      const ok = await post({ clientId, subscriptions: ['messages/*'] });
      assert.equal(ok.status, 204);
      assert.equal(await ok.text(), '');

      const missing = await post({});
      assert.equal(missing.status, 400);
      assert.deepEqual(await missing.json(), {
        data: { clientId: { code: 'validation_required', message: 'Cannot be blank.' } },
        message: 'Something went wrong while processing your request.',
        status: 400,
      });
      const unknown = await post({ clientId: 'nope', subscriptions: [] });
      assert.equal(unknown.status, 404);
      assert.deepEqual(await unknown.json(), { data: {}, message: 'Missing or invalid client id.', status: 404 });

      // guest → user upgrade allowed; then switching to another user is rejected
      const up = await post({ clientId, subscriptions: ['messages/*'] }, { Authorization: alice.authStore.token });
      assert.equal(up.status, 204);
      const sw = await post({ clientId, subscriptions: ['messages/*'] }, { Authorization: bob.authStore.token });
      assert.equal(sw.status, 403);
      assert.deepEqual(await sw.json(), {
        data: {},
        message: "The current and the previous request authorization don't match.",
        status: 403,
      });
      reader.cancel().catch(() => {});
    } finally {
      ctrl.abort();
    }
  });

  test('SDK reconnects and re-subscribes after a server restart', { timeout: 60_000 }, async () => {
    // Reference: the SSE stream is closed on shutdown; the SDK notices, reconnects with
    // backoff (200 ms … 2 s), gets a NEW clientId and re-POSTs its subscriptions.
    const pb = track(await loginAs(server, aliceU));
    const { events, cb } = collector();
    const connects = [];
    const disconnects = [];
    pb.realtime.onDisconnect = (subs) => disconnects.push(subs);
    await pb.realtime.subscribe('PB_CONNECT', (e) => connects.push(e.clientId));
    await pb.collection('messages').subscribe('*', cb);
    assert.equal(connects.length, 1);
    const firstClientId = pb.realtime.clientId;

    await server.restart();

    await waitFor(() => connects.length >= 2, { timeoutMs: 20_000, what: 'SDK reconnect (2nd PB_CONNECT)' });
    assert.ok(disconnects.length >= 1, 'onDisconnect fired');
    assert.notEqual(connects[1], firstClientId, 'a new clientId after reconnect');
    assert.equal(pb.realtime.clientId, connects.at(-1));

    // The SDK invokes PB_CONNECT listeners only after it has re-POSTed all subscriptions,
    // so a single create must now be delivered. (bob's token is still valid after the restart.)
    const created = await bob.collection('messages').create({ text: 'after restart', user: bobU.record.id });
    await waitFor(() => events.length >= 1, { timeoutMs: 5000, what: 'event after restart' });
    assert.equal(events.length, 1);
    assert.equal(events[0].action, 'create');
    assert.deepEqual(events[0].record, created);
    await pb.realtime.unsubscribe();
  });
});
