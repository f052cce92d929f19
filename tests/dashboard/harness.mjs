// Harness for the dashboard browser tests: a pocketlog server on a free loopback port with a
// fresh temp data dir and a superuser (or none: the installer test), plus headless Debian Chromium driven by playwright-core.
//
//   POCKETLOG_BIN   server binary (default ../../target/debug/pocketlog, else ../../target/release/pocketlog)
//   CHROMIUM_BIN    browser (default /usr/bin/chromium, Debian's `chromium` package)
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir, access, constants as fsConstants } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class TestServer {
  /** `superuser: false` starts on a data dir without one (the first-run installer link). */
  constructor({ superuser = true } = {}) {
    this.withSuperuser = superuser;
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
    this.proc = spawn(this.bin, ['serve', '--http', `127.0.0.1:${this.port}`, '--dir', this.dir], {
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
