// The auth collection options in the collection editor (saved with the collection through
// PATCH /api/collections/{id}): password auth (identity fields), OTP, MFA (duration and rule),
// OAuth2 (providers and mapped fields), the mail templates, the token durations and the login
// alert. Every input writes into the editor's draft.
//
// OAuth2 client secrets are write-only: the API never returns them, so an existing provider's
// secret input starts empty and is only sent when typed (the server keeps the stored one when
// the key is absent, as the reference does); a new provider needs one.
import { ApiError } from '../api.js';
import { h, clear, fieldError, row } from '../ui.js';
import { withAutocomplete } from './rule-input.js';

/** OAuth2 provider names the reference knows (the generic OIDC ones take their own URLs). */
export const OAUTH2_PROVIDERS = [
  'apple', 'bitbucket', 'box', 'discord', 'facebook', 'gitea', 'gitee', 'github', 'gitlab', 'google',
  'instagram2', 'kakao', 'lark', 'linear', 'livechat', 'mailcow', 'microsoft', 'monday', 'notion',
  'oidc', 'oidc2', 'oidc3', 'patreon', 'planningcenter', 'spotify', 'strava', 'trakt', 'twitch',
  'twitter', 'vk', 'wakatime', 'yandex',
];
const TEMPLATES = [
  ['verificationTemplate', 'Verification', '{APP_NAME}, {APP_URL}, {TOKEN}, {RECORD:*}'],
  ['resetPasswordTemplate', 'Password reset', '{APP_NAME}, {APP_URL}, {TOKEN}, {RECORD:*}'],
  ['confirmEmailChangeTemplate', 'Confirm e-mail change', '{APP_NAME}, {APP_URL}, {TOKEN}, {RECORD:*}'],
];
const TOKENS = [
  ['authToken', 'Auth token'], ['verificationToken', 'Verification token'],
  ['passwordResetToken', 'Password reset token'], ['emailChangeToken', 'E-mail change token'],
  ['fileToken', 'Protected file access token'],
];
const MAPPED = ['id', 'name', 'username', 'avatarURL'];

/** Which error keys of the collection belong to which section. */
const SECTION_ERROR_KEYS = {
  'opt-password': ['passwordAuth'], 'opt-otp': ['otp'], 'opt-mfa': ['mfa'], 'opt-oauth2': ['oauth2'],
  'opt-templates': TEMPLATES.map(([k]) => k), 'opt-tokens': TOKENS.map(([k]) => k), 'opt-alert': ['authAlert'],
};
const openSections = new Set();

const split = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const obj = (draft, key, dflt) => (draft[key] && typeof draft[key] === 'object' ? draft[key] : (draft[key] = dflt));

function numInput(id, value, set) {
  return h('input', { id, type: 'number', min: '0', value: value ?? '', oninput: (e) => set(e.target.value === '' ? 0 : Number(e.target.value)) });
}

function check(id, checked, label, set) {
  return h('label', { class: 'check' }, h('input', { id, type: 'checkbox', checked: !!checked, onchange: (e) => set(e.target.checked) }), ` ${label}`);
}

/** Subject and body inputs of a mail template object. */
function templateInputs(prefix, tpl, err, errPath, placeholders) {
  const subject = h('input', { id: `${prefix}-subject`, value: tpl.subject || '', oninput: (e) => { tpl.subject = e.target.value; } });
  const body = h('textarea', { id: `${prefix}-body`, rows: 6, class: 'mono', oninput: (e) => { tpl.body = e.target.value; } });
  body.value = tpl.body || '';
  return [
    row('Subject', subject, { error: fieldError(err, ...errPath, 'subject') }),
    row('Body (HTML)', body, { hint: `Placeholders: ${placeholders}`, error: fieldError(err, ...errPath, 'body') }),
  ];
}

/** An error about provider `i` as a whole (its fields' errors are shown under each input). */
function providerError(err, i) {
  const e = err?.data?.oauth2?.providers?.[String(i)];
  return e && typeof e.message === 'string' ? h('div', { class: 'field-error', role: 'alert' }, e.message) : null;
}

function providersEditor(draft, err, redraw) {
  const oauth2 = obj(draft, 'oauth2', { enabled: false, providers: [], mappedFields: {} });
  oauth2.providers = oauth2.providers || [];
  const listEl = h('ul', { class: 'providers', 'aria-label': 'OAuth2 providers' });
  clear(listEl, oauth2.providers.map((p, i) => {
    const base = `oauth2-${p.name}`;
    const secret = h('input', {
      id: `${base}-secret`, type: 'password', autocomplete: 'new-password',
      placeholder: p.__new ? 'client secret' : 'stored — leave empty to keep',
      oninput: (e) => { if (e.target.value) p.clientSecret = e.target.value; else delete p.clientSecret; },
    });
    const custom = /^oidc/.test(p.name);
    return h('li', { class: 'provider card', dataset: { name: p.name } },
      h('div', { class: 'stack grow' },
        h('div', { class: 'inline' }, h('strong', {}, p.name), h('span', { class: 'spacer' }),
          h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Remove provider ${p.name}`, onclick: () => { oauth2.providers.splice(i, 1); redraw(); } }, 'Remove')),
        h('div', { class: 'grid2' },
          row('Client ID', h('input', { id: `${base}-client-id`, value: p.clientId || '', oninput: (e) => { p.clientId = e.target.value; } }),
            { error: fieldError(err, 'oauth2', 'providers', String(i), 'clientId') }),
          row('Client secret', secret, { error: fieldError(err, 'oauth2', 'providers', String(i), 'clientSecret') }),
          row('Display name', h('input', { id: `${base}-display`, value: p.displayName || '', oninput: (e) => { p.displayName = e.target.value; } })),
          custom ? row('Auth URL', h('input', { id: `${base}-auth-url`, value: p.authURL || '', oninput: (e) => { p.authURL = e.target.value; } }), { error: fieldError(err, 'oauth2', 'providers', String(i), 'authURL') }) : null,
          custom ? row('Token URL', h('input', { id: `${base}-token-url`, value: p.tokenURL || '', oninput: (e) => { p.tokenURL = e.target.value; } }), { error: fieldError(err, 'oauth2', 'providers', String(i), 'tokenURL') }) : null,
          custom ? row('User info URL', h('input', { id: `${base}-userinfo-url`, value: p.userInfoURL || '', oninput: (e) => { p.userInfoURL = e.target.value; } })) : null),
        providerError(err, i)));
  }));
  const pick = h('select', { id: 'oauth2-add-name', 'aria-label': 'Provider to add' },
    OAUTH2_PROVIDERS.filter((n) => !oauth2.providers.some((p) => p.name === n)).map((n) => h('option', { value: n }, n)));
  const add = h('button', {
    type: 'button', class: 'btn', id: 'oauth2-add',
    onclick: () => {
      if (!pick.value) return;
      // __new only lives in the draft: it is stripped before saving.
      oauth2.providers.push({ name: pick.value, clientId: '', displayName: '', authURL: '', tokenURL: '', userInfoURL: '', pkce: null, extra: {}, __new: true });
      redraw();
      document.getElementById(`oauth2-${pick.value}-client-id`)?.focus();
    },
  }, '+ Add provider');
  oauth2.mappedFields = oauth2.mappedFields || {};
  return [
    check('oauth2-enabled', oauth2.enabled, 'Enable OAuth2 sign-in', (v) => { oauth2.enabled = v; }),
    listEl,
    h('div', { class: 'inline' }, pick, add),
    h('h4', {}, 'Mapped fields'),
    h('p', { class: 'muted' }, 'Fill these collection fields from the provider\'s user data on sign-up.'),
    h('div', { class: 'grid2' }, MAPPED.map((k) => row(`OAuth2 ${k} →`, h('input', { id: `oauth2-map-${k}`, value: oauth2.mappedFields[k] || '', placeholder: 'field name', oninput: (e) => { oauth2.mappedFields[k] = e.target.value; } })))),
  ];
}

/** The auth options cards for `draft` (an auth collection); `redraw` redraws the editor. */
export function authOptions(draft, err, redraw) {
  const pw = obj(draft, 'passwordAuth', { enabled: true, identityFields: ['email'] });
  const otp = obj(draft, 'otp', { enabled: false, duration: 180, length: 8, emailTemplate: { subject: '', body: '' } });
  otp.emailTemplate = otp.emailTemplate || { subject: '', body: '' };
  const mfa = obj(draft, 'mfa', { enabled: false, duration: 1800, rule: '' });
  const alert = obj(draft, 'authAlert', { enabled: true, emailTemplate: { subject: '', body: '' } });
  alert.emailTemplate = alert.emailTemplate || { subject: '', body: '' };
  const mfaRule = h('textarea', { id: 'mfa-rule', rows: 2, class: 'mono', placeholder: 'empty = every user; or a rule, e.g. @request.auth.role = "admin"', oninput: (e) => { mfa.rule = e.target.value; } });
  mfaRule.value = mfa.rule || '';
  const section = (id, title, ...children) => {
    // Sections stay open across redraws; a section with a server error opens itself.
    const errKeys = SECTION_ERROR_KEYS[id] || [];
    const hasError = !!(err && err.data && errKeys.some((k) => k in err.data));
    const el = h('details', { class: 'card auth-opt', id, open: openSections.has(id) || hasError }, h('summary', {}, title), h('div', { class: 'stack' }, children));
    el.addEventListener('toggle', () => { if (el.open) openSections.add(id); else openSections.delete(id); });
    return el;
  };
  return h('div', { class: 'auth-options' },
    h('h3', {}, 'Auth options'),
    section('opt-password', 'Password auth',
      check('password-enabled', pw.enabled !== false, 'Enable password sign-in', (v) => { pw.enabled = v; }),
      row('Identity fields (comma separated; each needs a UNIQUE index)', h('input', { id: 'identity-fields', value: (pw.identityFields || []).join(', '), oninput: (e) => { pw.identityFields = split(e.target.value); } }),
        { error: fieldError(err, 'passwordAuth') })),
    section('opt-otp', 'One-time password (OTP)',
      check('otp-enabled', otp.enabled, 'Enable OTP sign-in (a code mailed to the user)', (v) => { otp.enabled = v; }),
      h('div', { class: 'grid2' },
        row('Duration (seconds)', numInput('otp-duration', otp.duration, (v) => { otp.duration = v; }), { error: fieldError(err, 'otp', 'duration') }),
        row('Code length', numInput('otp-length', otp.length, (v) => { otp.length = v; }), { error: fieldError(err, 'otp', 'length') })),
      h('h4', {}, 'OTP e-mail'),
      templateInputs('otp-template', otp.emailTemplate, err, ['otp', 'emailTemplate'], '{APP_NAME}, {APP_URL}, {OTP}, {OTP_ID}, {RECORD:*}')),
    section('opt-mfa', 'Multi-factor authentication (MFA)',
      check('mfa-enabled', mfa.enabled, 'Require a second, different factor (password, OTP or OAuth2)', (v) => { mfa.enabled = v; }),
      row('Duration (seconds)', numInput('mfa-duration', mfa.duration, (v) => { mfa.duration = v; }), { error: fieldError(err, 'mfa', 'duration') }),
      row('MFA rule', withAutocomplete(mfaRule, () => draft), { id: 'mfa-rule', error: fieldError(err, 'mfa', 'rule') })),
    section('opt-oauth2', 'OAuth2', providersEditor(draft, err, redraw)),
    section('opt-templates', 'Mail templates',
      TEMPLATES.map(([key, label, ph]) => {
        const tpl = obj(draft, key, { subject: '', body: '' });
        return h('div', { class: 'template', dataset: { template: key } }, h('h4', {}, label), templateInputs(`tpl-${key}`, tpl, err, [key], ph));
      })),
    section('opt-tokens', 'Token durations',
      h('div', { class: 'grid2' }, TOKENS.map(([key, label]) => {
        const t = obj(draft, key, { duration: 0 });
        return row(`${label} (seconds)`, numInput(`token-${key}`, t.duration, (v) => { t.duration = v; }), { id: `token-${key}`, error: fieldError(err, key, 'duration') || fieldError(err, key) });
      }))),
    section('opt-alert', 'Login alert',
      check('alert-enabled', alert.enabled, 'E-mail the user about sign-ins from a new device or location', (v) => { alert.enabled = v; }),
      templateInputs('alert-template', alert.emailTemplate, err, ['authAlert', 'emailTemplate'], '{APP_NAME}, {APP_URL}, {ALERT_INFO}, {RECORD:*}')));
}

/**
 * The draft as the API takes it: drops the editor's markers (never a secret that was not typed).
 * A new provider without a secret is refused here, in the server's error shape (as the reference
 * answers), since an absent secret would otherwise mean "keep the stored one".
 */
export function authOptionsBody(body) {
  const missing = {};
  (body.oauth2?.providers || []).forEach((p, i) => {
    if (p.__new && !p.clientSecret) missing[String(i)] = { clientSecret: { code: 'validation_required', message: 'Cannot be blank.' } };
    delete p.__new;
  });
  if (Object.keys(missing).length) {
    throw new ApiError(400, { message: 'Failed to save the collection.', data: { oauth2: { providers: missing } } });
  }
  return body;
}

