// Harness for the dashboard browser tests: a pocketlog server on a free loopback port with a
// fresh temp data dir and a superuser (or none: the installer test), plus headless Debian Chromium driven by playwright-core.
//
//   POCKETLOG_BIN   server binary (default ../../target/debug/pocketlog, else ../../target/release/pocketlog)
//   CHROMIUM_BIN    browser (default /usr/bin/chromium, Debian's `chromium` package)
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir, access, constants as fsConstants } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import zlib from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const SUPERUSER_EMAIL = 'admin@example.com';
export const SUPERUSER_PASSWORD = 'Passw0rd123';

function serverBin() {
  if (process.env.POCKETLOG_BIN) return path.resolve(process.env.POCKETLOG_BIN);
  const debug = path.resolve(HERE, '../../target/debug/pocketlog');
  const release = path.resolve(HERE, '../../target/release/pocketlog');
  return existsSync(debug) ? debug : release;
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

function run(bin, args) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\nstdout: ${stdout}\nstderr: ${stderr}`;
        reject(err);
      } else resolve({ stdout, stderr });
    });
  });
}

export { freePort };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class TestServer {
  /** `superuser: false` starts on a data dir without one (the first-run installer link). */
  constructor({ superuser = true, args = [] } = {}) {
    this.withSuperuser = superuser;
    this.args = args;
    this.bin = serverBin();
    this.stdout = '';
    this.stderr = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    try {
      await access(this.bin, fsConstants.X_OK);
    } catch {
      throw new Error(`server binary not found: ${this.bin} (run \`cargo build --bin pocketlog\` or set POCKETLOG_BIN)`);
    }
    this.root = await mkdtemp(path.join(os.tmpdir(), 'dashboard-e2e-'));
    this.dir = path.join(this.root, 'pb_data');
    await mkdir(this.dir, { recursive: true });
    this.port = await freePort();
    if (this.withSuperuser) {
      await run(this.bin, ['superuser', 'upsert', SUPERUSER_EMAIL, SUPERUSER_PASSWORD, '--dir', this.dir]);
    }
    this.proc = spawn(this.bin, ['serve', '--http', `127.0.0.1:${this.port}`, '--dir', this.dir, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout.on('data', (d) => { if (this.stdout.length < 65536) this.stdout += d; });
    this.proc.stderr.on('data', (d) => { if (this.stderr.length < 65536) this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve(code ?? sig)));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) break;
      try {
        const res = await fetch(`${this.url}/api/health`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return this;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`server did not become healthy\nstderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
      await this.exited;
      clearTimeout(t);
    }
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }

  /** JSON API call as the superuser (token fetched once). */
  async api(method, p, body) {
    if (!this.token) {
      const res = await fetch(`${this.url}/api/collections/_superusers/auth-with-password`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ identity: SUPERUSER_EMAIL, password: SUPERUSER_PASSWORD }),
      });
      this.token = (await res.json()).token;
    }
    const res = await fetch(this.url + p, {
      method,
      headers: { 'content-type': 'application/json', authorization: this.token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, body: json };
  }
}

/** Headless Debian Chromium with a fresh profile; no network besides what the page asks for. */
export async function launchBrowser() {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-chromium-'));
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  try {
    await access(executablePath, fsConstants.X_OK);
  } catch {
    throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    viewport: { width: 1280, height: 860 },
    acceptDownloads: true,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Logs the page in as the test superuser through the login form. */
export async function login(page, server) {
  await page.goto(`${server.url}/_/`);
  await page.fill('#login-email', SUPERUSER_EMAIL);
  await page.fill('#login-password', SUPERUSER_PASSWORD);
  await page.press('#login-password', 'Enter');
  await page.locator('.coll-list').waitFor();
}

/**
 * A minimal SMTP sink on a free loopback port (no TLS; advertises AUTH PLAIN/LOGIN and accepts
 * any credentials). Every mail lands in `messages` as {from, rcpt, data, auth}; `waitFor(n)`
 * resolves once n mails arrived.
 */
export async function startSmtpSink() {
  const messages = [];
  const waiters = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.setEncoding('latin1');
    let buf = '';
    let mode = 'cmd';
    let cur = { from: '', rcpt: [], data: '', auth: '' };
    const say = (line) => sock.write(`${line}\r\n`);
    say('220 sink.test ESMTP');
    sock.on('data', (chunk) => {
      buf += chunk;
      for (;;) {
        if (mode === 'data') {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          cur.data = buf.slice(0, end);
          buf = buf.slice(end + 5);
          messages.push(cur);
          cur = { from: '', rcpt: [], data: '', auth: cur.auth };
          mode = 'cmd';
          say('250 OK queued');
          for (const w of waiters.splice(0)) w();
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (mode === 'auth-login-user') { cur.auth = `LOGIN ${line}`; mode = 'auth-login-pass'; say('334 UGFzc3dvcmQ6'); continue; }
        if (mode === 'auth-login-pass') { cur.auth += ` ${line}`; mode = 'cmd'; say('235 OK'); continue; }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') { say('250-sink.test'); say('250-AUTH PLAIN LOGIN'); say('250 8BITMIME'); }
        else if (verb === 'HELO') say('250 sink.test');
        else if (verb === 'AUTH') {
          const [, mech, initial] = line.split(' ');
          if (mech.toUpperCase() === 'PLAIN') { cur.auth = `PLAIN ${initial || ''}`; say('235 OK'); }
          else { mode = 'auth-login-user'; say('334 VXNlcm5hbWU6'); }
        } else if (verb === 'MAIL') { cur.from = line; say('250 OK'); }
        else if (verb === 'RCPT') { cur.rcpt.push(line); say('250 OK'); }
        else if (verb === 'DATA') { mode = 'data'; say('354 go ahead'); }
        else if (verb === 'RSET' || verb === 'NOOP') say('250 OK');
        else if (verb === 'QUIT') { say('221 bye'); sock.end(); return; }
        else say('502 not implemented');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    messages,
    async waitFor(n, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`SMTP sink: ${messages.length} of ${n} mails arrived`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
      return messages;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

/** A real `w`×`h` RGB PNG (a gradient), for uploads whose thumbnails the server must decode. */
export function pngBytes(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255) / w; raw[o + 1] = (y * 255) / h; raw[o + 2] = 128;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}
