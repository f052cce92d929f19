// Test harness: starts a PocketBase-compatible server (pocketlog or the reference
// PocketBase binary) on a free loopback port with a fresh temp data dir and a superuser.
//
//   E2E_SERVER=pocketlog (default)  -> $POCKETLOG_BIN (default ../../target/release/pocketlog)
//   E2E_SERVER=reference            -> $POCKETBASE_BIN (default /tmp/pocketbase)
//
// Both are driven through the same CLI:
//   BIN superuser upsert EMAIL PASS --dir DIR
//   BIN serve --http 127.0.0.1:PORT --dir DIR
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir, access, constants as fsConstants } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import EventSource from 'eventsource';
import PocketBase from 'pocketbase';

// The JS SDK's realtime service needs a global EventSource (Node has none).
globalThis.EventSource = EventSource;

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const SERVER_KIND = (process.env.E2E_SERVER || 'pocketlog').toLowerCase();
export const IS_REFERENCE = SERVER_KIND === 'reference';

export const SUPERUSER_EMAIL = 'admin@example.com';
export const SUPERUSER_PASSWORD = 'Passw0rd123';

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const MAX_LOG = 64 * 1024;

/** Use as `test(name, { skip: pocketlogOnly }, fn)` for pocketlog-only behaviour. */
export const pocketlogOnly = IS_REFERENCE ? 'pocketlog-only behaviour (not in reference PocketBase)' : false;

function serverBin() {
  if (IS_REFERENCE) return process.env.POCKETBASE_BIN || '/tmp/pocketbase';
  if (SERVER_KIND !== 'pocketlog') throw new Error(`unknown E2E_SERVER=${SERVER_KIND} (use pocketlog or reference)`);
  return process.env.POCKETLOG_BIN
    ? path.resolve(process.env.POCKETLOG_BIN)
    : path.resolve(HERE, '../../target/release/pocketlog');
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

function run(bin, args, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\nstdout: ${stdout}\nstderr: ${stderr}`;
        reject(err);
      } else resolve({ stdout, stderr });
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class TestServer {
  /** `serveArgs`: extra arguments of `serve` (e.g. pocketlog's `--hooksTimeout`). */
  constructor({ serveArgs = [] } = {}) {
    this.serveArgs = serveArgs;
    this.bin = serverBin();
    this.proc = null;
    this.stdout = '';
    this.stderr = '';
    this.exited = null; // promise resolved with exit code when the current process exits
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Creates the temp dir + superuser and starts serving. */
  async start() {
    try {
      await access(this.bin, fsConstants.X_OK);
    } catch {
      throw new Error(
        `server binary not found or not executable: ${this.bin} (E2E_SERVER=${SERVER_KIND}; ` +
          (IS_REFERENCE
            ? 'run `bash /work/shared/tools/get-pocketbase.sh /tmp/pocketbase` or set POCKETBASE_BIN)'
            : 'run `cargo build --release` or set POCKETLOG_BIN)'),
      );
    }
    // dataDir is nested so that anything the server writes next to it
    // (PocketBase: ../pb_migrations, ../pb_hooks) stays inside our temp root.
    this.root = await mkdtemp(path.join(os.tmpdir(), `e2e-${SERVER_KIND}-`));
    this.dir = path.join(this.root, 'pb_data');
    await mkdir(this.dir, { recursive: true });
    try {
      this.port = await freePort();
      await run(this.bin, ['superuser', 'upsert', SUPERUSER_EMAIL, SUPERUSER_PASSWORD, '--dir', this.dir]);
      await this._spawn();
    } catch (e) {
      await rm(this.root, { recursive: true, force: true });
      throw e;
    }
    return this;
  }

  async _spawn() {
    this.stdout = '';
    this.stderr = '';
    const args = ['serve', '--http', `127.0.0.1:${this.port}`, '--dir', this.dir, ...this.serveArgs];
    const proc = spawn(this.bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    proc.stdout.on('data', (d) => {
      if (this.stdout.length < MAX_LOG) this.stdout += d;
    });
    proc.stderr.on('data', (d) => {
      if (this.stderr.length < MAX_LOG) this.stderr += d;
    });
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => resolve(code ?? signal));
      proc.on('error', (e) => resolve(`spawn error: ${e.message}`));
    });
    let exitInfo = null;
    this.exited.then((c) => (exitInfo = c));

    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let lastErr = '';
    while (Date.now() < deadline) {
      if (exitInfo !== null) break;
      try {
        const res = await fetch(`${this.url}/api/health`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) {
          await res.arrayBuffer();
          return;
        }
        lastErr = `status ${res.status}`;
      } catch (e) {
        lastErr = e.message;
      }
      await sleep(100);
    }
    await this._kill();
    throw new Error(
      `server did not become healthy (${exitInfo !== null ? `exited: ${exitInfo}` : 'timeout'}; last: ${lastErr})\n` +
        `cmd: ${this.bin} serve --http 127.0.0.1:${this.port} --dir ${this.dir}\n` +
        `stderr:\n${this.stderr}\nstdout:\n${this.stdout}`,
    );
  }

  async _kill(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    let timer;
    const res = await Promise.race([
      this.exited,
      new Promise((r) => {
        timer = setTimeout(() => r('timeout'), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (res === 'timeout') {
      proc.kill('SIGKILL');
      await this.exited;
    }
  }

  /**
   * Stop the server (SIGTERM by default; pass {signal:'SIGKILL'} to simulate a crash) and
   * start it again on the same data dir and port.
   */
  async restart({ signal = 'SIGTERM' } = {}) {
    await this._kill(signal);
    this.lastExit = await this.exited;
    await this._spawn();
  }

  /** Stop the server and remove its temp dir. */
  async stop() {
    await this._kill();
    this.proc = null;
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }

  /** A fresh SDK client (own in-memory auth store), auto-cancellation off. */
  client() {
    const pb = new PocketBase(this.url);
    pb.autoCancellation(false);
    return pb;
  }

  /** A fresh SDK client logged in as the superuser. */
  async admin() {
    const pb = this.client();
    await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
    return pb;
  }

  /** Raw fetch against the server (for things the SDK hides). */
  async fetch(p, init = {}) {
    return fetch(this.url + p, { ...init, signal: init.signal ?? AbortSignal.timeout(10_000) });
  }
}

export async function startServer(options = {}) {
  const s = new TestServer(options);
  await s.start();
  return s;
}

export { sleep };

/** Poll `fn` until it returns a truthy value, at most `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Run `fn`, expect it to throw a ClientResponseError, return it. */
export async function expectError(fn, status) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected request to fail with ${status}, but it succeeded`);
  if (typeof err.status !== 'number') throw err;
  if (status !== undefined && err.status !== status) {
    throw new Error(`expected status ${status}, got ${err.status}: ${JSON.stringify(err.response)}`);
  }
  return err;
}

/** Seed chat app schema (api.md §13) as superuser `admin`. Returns {users, messages} collections. */
export async function seedChatSchema(admin, { textMin = 1, textMax = 200 } = {}) {
  const users = await admin.collections.getOne('users');
  const fields = users.fields.filter((f) => f.name !== 'username');
  fields.push({ name: 'username', type: 'text', required: true, min: 3, max: 50, pattern: '^[a-z0-9_]+$' });
  const updatedUsers = await admin.collections.update('users', {
    fields,
    indexes: [...users.indexes, 'CREATE UNIQUE INDEX idx_users_username ON users (username)'],
    passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
    listRule: '',
    viewRule: '',
  });
  const messages = await admin.collections.create({
    name: 'messages',
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '@request.auth.id != "" && user = @request.auth.id',
    updateRule: 'user = @request.auth.id',
    deleteRule: 'user = @request.auth.id',
    fields: [
      { name: 'text', type: 'text', required: true, min: textMin, max: textMax },
      { name: 'user', type: 'relation', required: true, collectionId: updatedUsers.id, maxSelect: 1, cascadeDelete: false },
      { name: 'created', type: 'autodate', onCreate: true },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  return { users: updatedUsers, messages };
}

/** Sign up a user through the public create endpoint; returns {record, password, username, email}. */
export async function signUp(server, username, { emailVisibility = false, name } = {}) {
  const pb = server.client();
  const password = `${username}pass123`;
  const email = `${username}@example.com`;
  const record = await pb.collection('users').create({
    username,
    email,
    emailVisibility,
    password,
    passwordConfirm: password,
    name: name ?? username,
  });
  return { record, password, username, email };
}

/** A new client logged in as the given user (by username). */
export async function loginAs(server, user) {
  const pb = server.client();
  await pb.collection('users').authWithPassword(user.username, user.password);
  return pb;
}
