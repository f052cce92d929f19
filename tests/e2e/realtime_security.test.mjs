// Realtime security (issue #12): a client id or event id is not a credential.
//
// 1. A guest EventSource that replays another user's stream id gets nothing private (on
//    pocketlog it resumes the session but gets no events until the owner proves itself; the reference
//    ignores Last-Event-ID and opens a fresh session). Its POSTs for that client are refused.
// 2. (pocketlog-only) The SDK's own reconnect resumes its session — an EventSource that sends
//    Last-Event-ID, no Authorization — then re-POSTs its subscriptions with its token, which
//    proves it: every missed event arrives, in order, once, then the live stream.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import EventSource from 'eventsource';
import { startServer, seedChatSchema, signUp, loginAs, waitFor, sleep, pocketlogOnly } from './harness.mjs';

const T = { timeout: 60_000 };

/** An EventSource class for the SDK that resumes: each new instance sends the id of the last
 * event any earlier instance received as `Last-Event-ID` (as a browser's own reconnect does). */
function resumingEventSource(state) {
  return class ResumingEventSource extends EventSource {
    constructor(url, init = {}) {
      const headers = { ...(init.headers || {}) };
      if (state.lastId) headers['Last-Event-ID'] = state.lastId;
      super(url, { ...init, headers });
      state.opened += 1;
    }

    emit(type, event) {
      if (type !== 'error' && type !== 'open' && event?.lastEventId) state.lastId = event.lastEventId;
      return super.emit(type, event);
    }
  };
}

/** A TCP proxy in front of the server whose connections can be cut and refused at will. */
async function startProxy(port) {
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
    },
    close() {
      down = true;
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('realtime security', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let aliceU;
  let bobU;
  const clients = [];
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
      viewRule: 'owner = @request.auth.id',
      createRule: '@request.auth.id != "" && owner = @request.auth.id',
      updateRule: 'owner = @request.auth.id',
      fields: [
        { name: 'body', type: 'text' },
        { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1, required: true },
      ],
    });
    await admin.collections.create({
      name: 'board',
      listRule: '',
      viewRule: '',
      createRule: '',
      fields: [{ name: 'body', type: 'text' }],
    });
    aliceU = await signUp(server, 'alice');
    bobU = await signUp(server, 'bob');
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

  test("a guest replaying another user's stream id gets nothing private", T, async () => {
    const alice = track(await loginAs(server, aliceU));
    const writer = await loginAs(server, aliceU);
    const state = { lastId: '', opened: 0 };
    const previous = globalThis.EventSource;
    globalThis.EventSource = resumingEventSource(state);
    const seen = [];
    try {
      await alice.collection('notes').subscribe('*', (e) => seen.push(e.record.body));
      await alice.collection('board').subscribe('*', (e) => seen.push(e.record.body));
    } finally {
      globalThis.EventSource = previous;
    }
    const owner = aliceU.record.id;
    await writer.collection('notes').create({ body: 'secret-0', owner });
    await waitFor(() => seen.length === 1, { what: "alice's own note" });
    const clientId = alice.realtime.clientId;
    const lastId = state.lastId;
    assert.ok(lastId.startsWith(clientId));
    // Alice goes away (her session is kept for resume on pocketlog).
    await alice.realtime.unsubscribe();
    await sleep(200);

    await writer.collection('board').create({ body: 'public-1' });
    await writer.collection('notes').create({ body: 'secret-2', owner });
    await writer.collection('board').create({ body: 'public-3' });

    for (const replayed of [clientId, lastId]) {
      const guest = new EventSource(`${server.url}/api/realtime`, { headers: { 'Last-Event-ID': replayed } });
      const got = [];
      let guestClientId = '';
      guest.addEventListener('PB_CONNECT', (e) => {
        guestClientId = e.lastEventId;
      });
      guest.addEventListener('notes/*', (e) => got.push(JSON.parse(e.data).record.body));
      guest.addEventListener('board/*', (e) => got.push(JSON.parse(e.data).record.body));
      try {
        await waitFor(() => guestClientId, { what: 'PB_CONNECT' });
        await sleep(700);
        assert.ok(
          got.every((body) => body.startsWith('public-')),
          `guest received private events: ${JSON.stringify(got)}`,
        );
        const bob = await loginAs(server, bobU);
        for (const auth of [{}, { Authorization: bob.authStore.token }]) {
          const res = await server.fetch('/api/realtime', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', ...auth },
            body: JSON.stringify({ clientId: guestClientId, subscriptions: ['notes/*'] }),
          });
          // pocketlog: 403 (the resumed session is alice's); the reference gave the guest a
          // new client of its own (it ignores Last-Event-ID), which a guest may subscribe.
          if (guestClientId === clientId) assert.equal(res.status, 403);
          else assert.notEqual(guestClientId, clientId);
        }
        await sleep(300);
        // Not even the public ones: on pocketlog the session is held for its owner, on the
        // reference the guest's fresh session has no subscriptions.
        assert.deepEqual(got, []);
      } finally {
        guest.close();
      }
    }
  });

  test(
    "the SDK's own reconnect (resume, then its token) gets every missed event in order",
    { ...T, skip: pocketlogOnly },
    async () => {
      const proxy = await startProxy(Number(new URL(server.url).port));
      try {
        const state = { lastId: '', opened: 0 };
        const previous = globalThis.EventSource;
        globalThis.EventSource = resumingEventSource(state);
        const alice = track(await loginAs(server, aliceU));
        alice.baseURL = proxy.url;
        const writer = await loginAs(server, aliceU);
        const owner = aliceU.record.id;
        const seen = [];
        const connects = [];
        await alice.realtime.subscribe('PB_CONNECT', (e) => connects.push(e.clientId));
        await alice.collection('notes').subscribe('*', (e) => seen.push(`${e.action}:${e.record.body}`));
        await alice.collection('board').subscribe('*', (e) => seen.push(`${e.action}:${e.record.body}`));
        const clientId = alice.realtime.clientId;
        await writer.collection('notes').create({ body: 'n0', owner });
        await waitFor(() => seen.length === 1, { what: 'first note' });

        proxy.cut();
        await sleep(300);
        const expected = ['create:n0'];
        // A public event first: were it sent before the SDK re-attached its listeners (right
        // after PB_CONNECT, before the re-POST), the SDK would drop it.
        await writer.collection('board').create({ body: 'b1' });
        expected.push('create:b1');
        const n1 = await writer.collection('notes').create({ body: 'n1', owner });
        expected.push('create:n1');
        for (let i = 2; i < 12; i++) {
          if (i % 2) {
            await writer.collection('board').create({ body: `b${i}` });
            expected.push(`create:b${i}`);
          } else {
            await writer.collection('notes').create({ body: `n${i}`, owner });
            expected.push(`create:n${i}`);
          }
        }
        await writer.collection('notes').update(n1.id, { body: 'n1-edited' });
        expected.push('update:n1-edited');
        await sleep(500);
        proxy.restore();

        await waitFor(() => connects.length >= 2, { timeoutMs: 20_000, what: 'SDK reconnect' });
        assert.equal(connects.at(-1), clientId, 'the reconnect resumed the same session');
        assert.ok(state.opened >= 2);
        await waitFor(() => seen.length >= expected.length, { timeoutMs: 10_000, what: 'the missed events' });
        await writer.collection('notes').create({ body: 'live', owner });
        expected.push('create:live');
        await waitFor(() => seen.length >= expected.length, { what: 'the live event' });
        await sleep(300);
        assert.deepEqual(seen, expected);
        await alice.realtime.unsubscribe();
        globalThis.EventSource = previous;
      } finally {
        proxy.close();
      }
    },
  );
});
