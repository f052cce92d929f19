// Browser test of the cluster screen (#/cluster, issue #19): two pocketlog nodes on one NATS
// JetStream server (`nats-server -js`, started here on loopback; `.ci/run` installs it). The
// leader's screen shows its role, the epoch, positions, lag and NATS state; "Step down" hands
// the lease over and the screen follows (the other node leads in a later epoch). A server
// without --cluster shows that it is not in a cluster.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TestServer, launchBrowser, login, freePort, sleep, ARTIFACTS } from './harness.mjs';

const T = 20_000;

async function startNats() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-nats-'));
  const port = await freePort();
  const proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' });
  const deadline = Date.now() + T;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => (socket.end(), resolve(true)));
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    assert.ok(Date.now() < deadline, 'nats-server did not start (apt-get install nats-server)');
    await sleep(100);
  }
  return { url: `nats://127.0.0.1:${port}`, stop: async () => { proc.kill('SIGKILL'); await rm(dir, { recursive: true, force: true }); } };
}

describe('cluster screen', () => {
  let nats;
  let leader;
  let follower;
  let standalone;
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    nats = await startNats();
    const args = ['--cluster', nats.url, '--cluster-name', 'dash', '--replicate', 'sync'];
    leader = await new TestServer({ args }).start();
    follower = await new TestServer({ superuser: false, args }).start();
    standalone = await new TestServer().start();
    browser = await launchBrowser();
    page = browser.context.pages()[0] || (await browser.context.newPage());
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (browser) await browser.close();
    for (const server of [follower, leader, standalone]) if (server) await server.stop();
    if (nats) await nats.stop();
  });

  test('the leader shows its status and steps down; the screen follows', async () => {
    await login(page, leader);
    await page.click('a[href="#/cluster"]');
    await page.locator('[data-testid="cluster-role"]', { hasText: 'leader' }).waitFor();
    const epoch = Number(await page.locator('[data-testid="cluster-epoch"]').innerText());
    assert.ok(epoch > 0, `epoch ${epoch}`);
    assert.equal(await page.locator('[data-testid="cluster-connected"]').innerText(), 'connected');
    assert.equal(await page.locator('[data-testid="cluster-name"]').innerText(), 'dash');
    const applied = Number(await page.locator('[data-testid="cluster-applied"]').innerText());
    const status = (await leader.api('GET', '/api/cluster')).body;
    assert.ok(applied >= 1 && applied <= status.appliedSeq, `${applied} vs ${JSON.stringify(status)}`);
    assert.match(await page.locator('[data-testid="cluster-lag"]').innerText(), /^\d+ positions · \d+ ms$/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'cluster-leader.png'), fullPage: true });

    await page.click('#cluster-step-down');
    await page.click('.confirm button[type="submit"]');
    await page.locator('#toasts', { hasText: 'Stepped down' }).waitFor();
    await page.locator('[data-testid="cluster-role"]', { hasText: 'follower' }).waitFor({ timeout: T });
    assert.equal(await page.locator('#cluster-step-down').count(), 0, 'no step-down on a follower');
    // The other node took over in a later epoch, and the screen names it as the leader.
    const deadline = Date.now() + T;
    let other;
    do {
      other = (await follower.api('GET', '/api/cluster')).body;
      if (other.role === 'leader') break;
      await sleep(200);
    } while (Date.now() < deadline);
    assert.equal(other.role, 'leader', JSON.stringify(other));
    assert.ok(other.epoch > epoch, JSON.stringify(other));
    await page.locator('[data-testid="cluster-leader"]', { hasText: other.node }).waitFor({ timeout: T });
    await page.locator('[data-testid="cluster-epoch"]', { hasText: String(other.epoch) }).waitFor();
    assert.deepEqual(pageErrors, []);
  });

  test('a server without --cluster says so', async () => {
    await login(page, standalone);
    await page.goto(`${standalone.url}/_/#/cluster`);
    await page.locator('[data-testid="cluster-none"]').waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
