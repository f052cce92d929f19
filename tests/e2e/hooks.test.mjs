// JS hooks (`pb_hooks`) through the official JS SDK: the documented PocketBase examples (a
// custom route with auth, a create hook that sets a field, an after-success hook that mails
// an SMTP sink, a cron run through the crons API), and the limits (an infinite loop, a huge
// allocation and a throwing hook answer errors; the server keeps serving). The hooks are
// written to `pb_hooks` beside the data dir (the default of both servers) and the server is
// restarted to load them. Runs against the reference too (E2E_SERVER=reference), except the
// loop and allocation limits, which goja has no bound for.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer, expectError, waitFor, pocketlogOnly, IS_REFERENCE } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SINK = path.resolve(HERE, '../../api/tests/mail_support/smtp_sink.py');
const T = { timeout: 60_000 };
/** pocketlog's bound of one hook invocation in this test (seconds). */
const HOOK_TIMEOUT = 2;

const HOOKS = `
routerAdd("GET", "/api/myapp/hello", (e) => {
  return e.json(200, { id: e.auth.id, email: e.auth.email(), greeting: "Hello " + e.auth.email() })
}, $apis.requireAuth())

onRecordCreateRequest((e) => {
  e.record.set("slug", e.record.get("title").toLowerCase().replace(/[^a-z0-9]+/g, "-"))
  return e.next()
}, "posts")

onRecordAfterCreateSuccess((e) => {
  const message = new MailerMessage({
    from: { address: $app.settings().meta.senderAddress, name: "Blog" },
    to: [{ address: "editor@example.com" }],
    subject: "New post: " + e.record.get("title"),
    html: "<p>" + e.record.get("slug") + "</p>",
  })
  $app.newMailClient().send(message)
  return e.next()
}, "posts")

cronAdd("audit_tick", "*/30 * * * *", () => {
  const record = new Record($app.findCollectionByNameOrId("audit"))
  record.set("action", "tick")
  $app.save(record)
})

routerAdd("GET", "/api/myapp/loop", (e) => { while (true) { } })
routerAdd("GET", "/api/myapp/alloc", (e) => { let a = []; while (true) { a.push("x".repeat(4096) + a.length) } })
routerAdd("GET", "/api/myapp/throw", (e) => { throw new Error("hook failure") })
`;

/** Starts the SMTP sink; resolves to { port, mails(), waitFor(n), stop() }. */
async function startSink() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2e-hooks-sink-'));
  const proc = spawn('python3', [SINK, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`SMTP sink exited (${code}); is aiosmtpd installed? run .ci/run`)));
  });
  const port = Number(line.replace('ready ', ''));
  const mails = async () => {
    const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    return Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(dir, n), 'utf8'))));
  };
  return {
    port,
    mails,
    waitFor: (n) => waitFor(async () => ((await mails()).length >= n ? mails() : null), { timeoutMs: 15_000, what: `${n} mails` }),
    async stop() {
      proc.stdin.end();
      proc.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('JS hooks (pb_hooks) through the SDK', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let sink;

  before(async () => {
    sink = await startSink();
    server = await startServer({ serveArgs: IS_REFERENCE ? [] : ['--hooksTimeout', String(HOOK_TIMEOUT), '--hooksPool', '2'] });
    admin = await server.admin();
    await admin.collections.create({
      name: 'posts', type: 'base', listRule: '', viewRule: '', createRule: '@request.auth.id != ""',
      fields: [{ name: 'title', type: 'text', required: true }, { name: 'slug', type: 'text' }],
    });
    await admin.collections.create({ name: 'audit', type: 'base', fields: [{ name: 'action', type: 'text' }] });
    await admin.settings.update({
      smtp: { enabled: true, host: '127.0.0.1', port: sink.port, tls: false },
      meta: { senderName: 'Blog', senderAddress: 'blog@example.com' },
    });
    await admin.collection('users').create({ email: 'writer@example.com', password: 'writer12345', passwordConfirm: 'writer12345' });
    const hooksDir = path.join(server.root, 'pb_hooks');
    await mkdir(hooksDir, { recursive: true });
    await writeFile(path.join(hooksDir, 'main.pb.js'), HOOKS);
    await server.restart();
    admin = await server.admin();
  });

  after(async () => {
    await server?.stop();
    await sink?.stop();
  });

  test('a custom route with $apis.requireAuth()', T, async () => {
    const guest = server.client();
    await expectError(() => guest.send('/api/myapp/hello', {}), 401);
    const pb = server.client();
    const auth = await pb.collection('users').authWithPassword('writer@example.com', 'writer12345');
    const hello = await pb.send('/api/myapp/hello', {});
    assert.deepEqual(hello, { id: auth.record.id, email: 'writer@example.com', greeting: 'Hello writer@example.com' });
  });

  test('a create hook sets a field; the after-success hook mails the sink', T, async () => {
    const pb = server.client();
    await pb.collection('users').authWithPassword('writer@example.com', 'writer12345');
    const post = await pb.collection('posts').create({ title: 'Hello Hooks World' });
    assert.equal(post.slug, 'hello-hooks-world');
    const stored = await pb.collection('posts').getOne(post.id);
    assert.equal(stored.slug, 'hello-hooks-world');
    const mails = await sink.waitFor(1);
    assert.equal(mails[0].subject, 'New post: Hello Hooks World');
    assert.equal(mails[0].to, 'editor@example.com');
    assert.match(mails[0].from, /blog@example\.com/);
    assert.match(mails[0].html, /hello-hooks-world/);
  });

  test('a cron job is listed and runs through the crons API', T, async () => {
    const jobs = await admin.crons.getFullList();
    assert.deepEqual(jobs[0], { id: 'audit_tick', expression: '*/30 * * * *' });
    await admin.crons.run('audit_tick');
    const audit = await admin.collection('audit').getFullList();
    assert.deepEqual(audit.map((r) => r.action), ['tick']);
    await expectError(() => admin.crons.run('nope'), 404);
  });

  test('a throwing hook answers 400 and the server keeps serving', T, async () => {
    const pb = server.client();
    const err = await expectError(() => pb.send('/api/myapp/throw', {}), 400);
    assert.equal(err.response.message, 'Something went wrong while processing your request.');
    assert.ok((await pb.collection('posts').getList(1, 10)).totalItems >= 1);
  });

  test('an infinite loop and a huge allocation are stopped; the server keeps serving', { ...T, skip: pocketlogOnly }, async () => {
    const pb = server.client();
    const started = Date.now();
    await expectError(() => pb.send('/api/myapp/loop', {}), 400);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= HOOK_TIMEOUT * 1000 - 200 && elapsed < HOOK_TIMEOUT * 1000 + 5000, `loop stopped after ${elapsed} ms`);
    await expectError(() => pb.send('/api/myapp/alloc', {}), 400);
    // Both VMs of the pool are usable again.
    for (let i = 0; i < 4; i += 1) {
      const pbUser = server.client();
      await pbUser.collection('users').authWithPassword('writer@example.com', 'writer12345');
      assert.equal((await pbUser.send('/api/myapp/hello', {})).email, 'writer@example.com');
    }
    const health = await pb.health.check();
    assert.equal(health.code, 200);
  });
});
