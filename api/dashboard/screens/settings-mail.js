// Settings › Mail: the sender (meta.senderName/senderAddress) and SMTP (settings.smtp: host,
// port, username, password, auth method, TLS, local name). The password is write-only: the API
// never returns it, an empty input keeps the stored one. "Send test e-mail" asks for an address,
// a template and an auth collection and calls POST /api/settings/test/email.
import { api } from '../api.js';
import { h, clear, toast, errorBox, fieldError, modal, row } from '../ui.js';
import { state } from '../core.js';
import { settingsForm } from './settings-form.js';

export const TEMPLATES = [
  ['verification', 'Verification'],
  ['password-reset', 'Password reset'],
  ['email-change', 'Confirm e-mail change'],
  ['otp', 'OTP'],
  ['login-alert', 'Login alert'],
];

function testEmailDialog() {
  return modal((close) => {
    const email = h('input', { id: 'test-email-to', type: 'email', required: true, autofocus: true });
    const template = h('select', { id: 'test-email-template' }, TEMPLATES.map(([v, l]) => h('option', { value: v }, l)));
    const authColls = state.collections.filter((c) => c.type === 'auth');
    const coll = h('select', { id: 'test-email-collection' }, authColls.map((c) => h('option', { value: c.name, selected: c.name === '_superusers' }, c.name)));
    const msg = h('div', { 'aria-live': 'polite' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary', id: 'test-email-send' }, 'Send');
    return h('form', {
      class: 'panel',
      onsubmit: async (e) => {
        e.preventDefault();
        send.disabled = true;
        clear(msg);
        try {
          await api.post('/api/settings/test/email', { email: email.value, template: template.value, collection: coll.value });
          toast(`Test e-mail sent to ${email.value}.`, 'success');
          close(true);
        } catch (err) {
          clear(msg, errorBox(err), fieldError(err, 'email'));
          send.disabled = false;
        }
      },
    },
    h('div', { class: 'panel-head' }, h('h3', {}, 'Send test e-mail')),
    msg,
    row('To', email), row('Template', template), row('Auth collection', coll),
    h('div', { class: 'actions' }, h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'btn', onclick: () => close(false) }, 'Cancel'), send));
  }, { label: 'Send test e-mail' });
}

export function mailSection(s) {
  return settingsForm(s, {
    id: 'mail-save',
    extra: () => h('button', { type: 'button', class: 'btn', id: 'mail-test', onclick: () => testEmailDialog() }, 'Send test e-mail'),
    build: (st, err) => {
      const smtp = st.smtp || {};
      const senderName = h('input', { id: 'mail-sender-name', value: st.meta?.senderName || '' });
      const senderAddress = h('input', { id: 'mail-sender-address', type: 'email', value: st.meta?.senderAddress || '' });
      const enabled = h('input', { id: 'smtp-enabled', type: 'checkbox', checked: !!smtp.enabled });
      const host = h('input', { id: 'smtp-host', value: smtp.host || '' });
      const port = h('input', { id: 'smtp-port', type: 'number', value: smtp.port ?? 587 });
      const username = h('input', { id: 'smtp-username', value: smtp.username || '', autocomplete: 'off' });
      const password = h('input', { id: 'smtp-password', type: 'password', autocomplete: 'new-password', placeholder: 'stored — leave empty to keep' });
      const authMethod = h('select', { id: 'smtp-auth' }, [['', 'default (PLAIN)'], ['PLAIN', 'PLAIN'], ['LOGIN', 'LOGIN']].map(([v, l]) => h('option', { value: v, selected: (smtp.authMethod || '') === v }, l)));
      const tls = h('input', { id: 'smtp-tls', type: 'checkbox', checked: !!smtp.tls });
      const localName = h('input', { id: 'smtp-local-name', value: smtp.localName || '', placeholder: 'localhost' });
      const content = [
        h('section', { class: 'card' }, h('h3', {}, 'Sender'),
          h('div', { class: 'grid2' },
            row('Sender name', senderName, { error: fieldError(err, 'meta', 'senderName') }),
            row('Sender address', senderAddress, { error: fieldError(err, 'meta', 'senderAddress') }))),
        h('section', { class: 'card' }, h('h3', {}, 'SMTP server'),
          h('label', { class: 'check' }, enabled, ' Use an SMTP server (mails are only logged otherwise)'),
          h('div', { class: 'grid2' },
            row('Host', host, { error: fieldError(err, 'smtp', 'host') }),
            row('Port', port, { error: fieldError(err, 'smtp', 'port') }),
            row('Username', username, { error: fieldError(err, 'smtp', 'username') }),
            row('Password', password, { error: fieldError(err, 'smtp', 'password') }),
            row('Auth method', authMethod, { error: fieldError(err, 'smtp', 'authMethod') }),
            row('Local name (HELO)', localName, { error: fieldError(err, 'smtp', 'localName') })),
          h('label', { class: 'check' }, tls, ' TLS from the start (implicit TLS, usually port 465); otherwise STARTTLS when offered')),
      ];
      const collect = () => {
        const body = {
          meta: { senderName: senderName.value, senderAddress: senderAddress.value },
          smtp: { enabled: enabled.checked, host: host.value, port: Number(port.value), username: username.value, authMethod: authMethod.value, tls: tls.checked, localName: localName.value },
        };
        if (password.value) body.smtp.password = password.value;
        return body;
      };
      return { content, collect };
    },
  });
}
