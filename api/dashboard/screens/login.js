// Login and first-run installer screens.
import { api, auth } from '../api.js';
import { h, clear, toast, errorBox, row } from '../ui.js';
import { state, root, go } from '../core.js';

export function renderLogin() {
  let err = null;
  const email = h('input', { id: 'login-email', type: 'email', name: 'email', required: true, autocomplete: 'username', autofocus: true });
  const password = h('input', { id: 'login-password', type: 'password', name: 'password', required: true, autocomplete: 'current-password' });
  const errSlot = h('div', {});
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const form = h(
    'form',
    {
      class: 'login card',
      onsubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        try {
          const res = await api.post('/api/collections/_superusers/auth-with-password', {
            identity: email.value, password: password.value,
          });
          auth.save(res.token, res.record);
          state.collections = [];
          go('#/');
        } catch (e2) {
          err = e2;
          clear(errSlot, errorBox(err));
          submit.disabled = false;
          password.focus();
        }
      },
    },
    h('h1', {}, 'pocketlog'),
    h('p', { class: 'muted' }, 'Superuser login'),
    errSlot,
    row('Email', email),
    row('Password', password),
    submit,
  );
  clear(root, h('div', { class: 'login-wrap' }, form));
  email.focus();
}

// ---------------------------------------------------------------- first-run installer

/** Creates the first superuser with the one-time token of the installer link, then logs in. */
export function renderInstaller(token) {
  const email = h('input', { id: 'install-email', type: 'email', name: 'email', required: true, autocomplete: 'username' });
  const password = h('input', { id: 'install-password', type: 'password', name: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const confirm = h('input', { id: 'install-password-confirm', type: 'password', name: 'passwordConfirm', required: true, autocomplete: 'new-password' });
  const errSlot = h('div', {});
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Create superuser and log in');
  const form = h(
    'form',
    {
      class: 'login card installer',
      onsubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        clear(errSlot);
        try {
          await api.post('/api/installer', {
            token, email: email.value, password: password.value, passwordConfirm: confirm.value,
          });
          const res = await api.post('/api/collections/_superusers/auth-with-password', {
            identity: email.value, password: password.value,
          });
          auth.save(res.token, res.record);
          state.collections = [];
          toast('Superuser created.');
          go('#/');
        } catch (err) {
          // A dead link or an existing superuser: the way on is the login screen.
          const dead = err.status === 401 || (err.status === 400 && !Object.keys(err.data).length);
          clear(errSlot, errorBox(err), dead ? h('p', {}, h('a', { href: '#/login' }, 'Go to the login screen')) : null);
          submit.disabled = false;
        }
      },
    },
    h('h1', {}, 'pocketlog'),
    h('p', { class: 'muted' }, 'Create your first superuser account'),
    errSlot,
    row('Email', email),
    row('Password', password),
    row('Password confirm', confirm),
    submit,
  );
  clear(root, h('div', { class: 'login-wrap' }, form));
  email.focus();
}
