// Mail-driven auth flows through the official JS SDK against a real SMTP sink (Python
// aiosmtpd, api/tests/mail_support/smtp_sink.py, installed by .ci/run): test e-mail,
// verification, password reset, e-mail change, OTP and MFA. Runs against the reference too
// (E2E_SERVER=reference).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer, expectError, waitFor } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SINK = path.resolve(HERE, '../../api/tests/mail_support/smtp_sink.py');
const T = { timeout: 30_000 };

/** Starts the SMTP sink; resolves to { port, mails(), waitFor(n), stop() }. */
async function startSink() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2e-sink-'));
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

const linkToken = (mail, route) => {
  const m = mail.text.match(new RegExp(`${route}/([\\w.-]+)`));
  assert.ok(m, `no ${route} link in ${mail.text}`);
  return m[1];
};
const otpCode = (mail) => mail.text.match(/one-time password is: (\d+)/)[1];

describe('mail flows (JS SDK + SMTP sink)', { timeout: 180_000 }, () => {
  let server;
  let admin;
  let sink;
  let seen = 0;
  /** The next mail (mails are requested one at a time). */
  const nextMail = async () => {
    seen += 1;
    return (await sink.waitFor(seen))[seen - 1];
  };

  before(async () => {
    sink = await startSink();
    server = await startServer();
    admin = await server.admin();
    await admin.settings.update({
      smtp: { enabled: true, host: '127.0.0.1', port: sink.port },
      meta: { appName: 'E2EApp', appURL: 'http://e2e.test', senderName: 'E2E', senderAddress: 'e2e@e2e.test' },
    });
  });
  after(async () => {
    await server?.stop();
    await sink?.stop();
  });

  test('settings.testEmail reaches the sink', T, async () => {
    assert.equal(await admin.settings.testEmail('users', 'probe@e2e.test', 'verification'), true);
    const mail = await nextMail();
    assert.equal(mail.subject, 'Verify your E2EApp email');
    assert.equal(mail.from, 'E2E <e2e@e2e.test>');
    assert.deepEqual(mail.rcpt, ['probe@e2e.test']);
    const err = await expectError(() => admin.settings.testEmail('users', 'probe@e2e.test', 'nope'), 400);
    assert.equal(err.response.data.template.code, 'validation_in_invalid');
  });

  test('verification and password reset through the mailed links', T, async () => {
    const pb = server.client();
    const user = await pb.collection('users').create({
      email: 'flow@e2e.test', password: 'flowpass123', passwordConfirm: 'flowpass123',
    });
    assert.equal(await pb.collection('users').requestVerification('flow@e2e.test'), true);
    const verify = await nextMail();
    assert.deepEqual(verify.rcpt, ['flow@e2e.test']);
    assert.equal(await pb.collection('users').confirmVerification(linkToken(verify, 'confirm-verification')), true);
    assert.equal((await admin.collection('users').getOne(user.id)).verified, true);

    assert.equal(await pb.collection('users').requestPasswordReset('flow@e2e.test'), true);
    const reset = await nextMail();
    assert.equal(reset.subject, 'Reset your E2EApp password');
    const token = linkToken(reset, 'confirm-password-reset');
    assert.equal(await pb.collection('users').confirmPasswordReset(token, 'newpass1234', 'newpass1234'), true);
    await pb.collection('users').authWithPassword('flow@e2e.test', 'newpass1234');
    assert.ok(pb.authStore.isValid);
    await expectError(() => pb.collection('users').confirmPasswordReset(token, 'other12345', 'other12345'), 400);
  });

  test('e-mail change through the mailed link', T, async () => {
    const pb = server.client();
    await pb.collection('users').create({ email: 'change@e2e.test', password: 'changepass1', passwordConfirm: 'changepass1' });
    await pb.collection('users').authWithPassword('change@e2e.test', 'changepass1');
    assert.equal(await pb.collection('users').requestEmailChange('changed@e2e.test'), true);
    const mail = await nextMail();
    assert.deepEqual(mail.rcpt, ['changed@e2e.test']);
    const token = linkToken(mail, 'confirm-email-change');
    const wrong = await expectError(() => pb.collection('users').confirmEmailChange(token, 'not-the-password'), 400);
    assert.equal(wrong.response.data.password.code, 'validation_invalid_password');
    assert.equal(await pb.collection('users').confirmEmailChange(token, 'changepass1'), true);
    const fresh = server.client();
    const auth = await fresh.collection('users').authWithPassword('changed@e2e.test', 'changepass1');
    assert.equal(auth.record.email, 'changed@e2e.test');
  });

  test('OTP, then MFA with password + OTP', T, async () => {
    await admin.collections.update('users', { otp: { enabled: true, length: 6 } });
    const pb = server.client();
    await pb.collection('users').create({ email: 'otp@e2e.test', password: 'otppass1234', passwordConfirm: 'otppass1234' });
    const ghost = await pb.collection('users').requestOTP('ghost@e2e.test');
    assert.equal(typeof ghost.otpId, 'string');
    const { otpId } = await pb.collection('users').requestOTP('otp@e2e.test');
    const code = otpCode(await nextMail());
    assert.equal(code.length, 6);
    await expectError(() => pb.collection('users').authWithOTP(otpId, code === '000000' ? '111111' : '000000'), 400);
    const auth = await pb.collection('users').authWithOTP(otpId, code);
    assert.equal(auth.record.email, 'otp@e2e.test');
    assert.ok(pb.authStore.isValid);

    // The unverified record proven by OTP lost its password (as the reference does).
    await expectError(() => server.client().collection('users').authWithPassword('otp@e2e.test', 'otppass1234'), 400);

    await admin.collection('users').create({
      email: 'mfa@e2e.test', password: 'mfapass1234', passwordConfirm: 'mfapass1234', verified: true,
    });
    await admin.collections.update('users', { mfa: { enabled: true } });
    const mfaClient = server.client();
    const first = await expectError(() => mfaClient.collection('users').authWithPassword('mfa@e2e.test', 'mfapass1234'), 401);
    const mfaId = first.response.mfaId;
    assert.equal(typeof mfaId, 'string');
    const second = await mfaClient.collection('users').requestOTP('mfa@e2e.test');
    const code2 = otpCode(await nextMail());
    const done = await mfaClient.collection('users').authWithOTP(second.otpId, code2, { mfaId });
    assert.equal(done.record.email, 'mfa@e2e.test');
    assert.ok(mfaClient.authStore.isValid);
  });
});
