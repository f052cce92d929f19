// pocketlog admin dashboard: a hash-routed single page app on the public HTTP API.
//
// Routes:  #/login · #/c/{name} (records) · #/c/{name}/realtime · #/c/{name}/edit ·
//          #/new-collection · #/settings · #/backups ·
//          #/pbinstall/{token} (first-run installer: the link `serve` prints without a superuser)
// Every screen renders API failures as messages (errorBox); a failed render shows the error
// instead of leaving the page blank.

import { api, auth, enc, quote, ApiError, isMissingEndpoint, onUnauthorized } from './api.js';
import {
  h, clear, toast, errorBox, fieldError, modal, confirmDialog, row, uid, fmtSize,
  toLocalInput, fromLocalInput, flattenErrors,
} from './ui.js';

const root = document.getElementById('app');
const state = { collections: [], appName: 'pocketlog', cleanup: [] };

const FIELD_TYPES = [
  'text', 'editor', 'number', 'bool', 'email', 'url', 'date', 'autodate',
  'select', 'file', 'relation', 'json', 'geoPoint', 'password',
];
const RULES = ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule'];
const AUTH_RULES = ['authRule', 'manageRule'];
const RULE_LABELS = {
  listRule: 'List/Search rule', viewRule: 'View rule', createRule: 'Create rule',
  updateRule: 'Update rule', deleteRule: 'Delete rule', authRule: 'Auth rule',
  manageRule: 'Manage rule',
};

// ---------------------------------------------------------------- boot and routing

onUnauthorized(() => {
  auth.clear();
  toast('Your session has expired: log in again.', 'error');
  go('#/login');
});

window.addEventListener('error', (e) => toast(`Unexpected error: ${e.message}`, 'error'));
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  if (r && r.name === 'AbortError') return;
  toast(r && r.message ? r.message : String(r), 'error');
});
window.addEventListener('hashchange', () => render());
// A link to the screen already shown reloads it (there is no hashchange then).
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="#/"]');
  if (a && a.getAttribute('href') === location.hash && !e.defaultPrevented) {
    e.preventDefault();
    render();
  }
});

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return parts;
}

async function boot() {
  auth.load();
  if (auth.token) {
    try {
      const res = await api.post('/api/collections/_superusers/auth-refresh');
      auth.save(res.token, res.record);
    } catch (e) {
      if (e.status === 401 || e.status === 403 || e.status === 404) auth.clear();
      // A network failure keeps the token: the screens show the error and a retry works.
    }
  }
  render();
}

async function render() {
  for (const fn of state.cleanup.splice(0)) fn();
  const parts = parseRoute();
  try {
    if (parts[0] === 'pbinstall' || parts[0] === 'pbinstal') {
      if (auth.token) return go('#/');
      return renderInstaller(parts[1] || '');
    }
    if (!auth.token) return renderLogin();
    if (parts[0] === 'login') return go('#/');
    await ensureCollections();
    const main = layout(parts);
    if (parts[0] === 'c' && parts[1]) {
      const coll = findCollection(parts[1]);
      if (!coll) return clear(main, errorBox(new ApiError(404, { message: `No collection named "${parts[1]}".` })));
      if (parts[2] === 'edit') return renderCollectionEditor(main, coll);
      if (parts[2] === 'realtime') return renderRealtime(main, coll);
      return await renderRecords(main, coll);
    }
    if (parts[0] === 'new-collection') return renderCollectionEditor(main, null);
    if (parts[0] === 'settings') return await renderSettings(main);
    if (parts[0] === 'backups') return await renderBackups(main);
    const first = state.collections.find((c) => !c.system) || state.collections.find((c) => c.name === 'users') || state.collections[0];
    if (first) return go(`#/c/${enc(first.name)}`);
    clear(main, h('p', {}, 'No collections yet.'));
  } catch (e) {
    const target = document.querySelector('main') || root;
    clear(target, errorBox(e), h('button', { class: 'btn', onclick: () => render() }, 'Retry'));
  }
}

async function ensureCollections(force = false) {
  if (state.collections.length && !force) return;
  const list = await api.get('/api/collections', { perPage: 500, page: 1 });
  state.collections = list.items || [];
}

function findCollection(nameOrId) {
  return state.collections.find((c) => c.name === nameOrId || c.id === nameOrId);
}

// ---------------------------------------------------------------- login

function renderLogin() {
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
function renderInstaller(token) {
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

// ---------------------------------------------------------------- layout

function layout(parts) {
  const current = parts[0] === 'c' ? parts[1] : null;
  const search = h('input', { type: 'search', placeholder: 'Search collections', 'aria-label': 'Search collections', class: 'sidebar-search' });
  const list = h('ul', { class: 'coll-list' });
  const fill = () => {
    const q = search.value.toLowerCase();
    const items = state.collections.filter((c) => c.name.toLowerCase().includes(q));
    const regular = items.filter((c) => !c.system);
    const system = items.filter((c) => c.system);
    const li = (c) =>
      h('li', {}, h('a', { href: `#/c/${enc(c.name)}`, class: c.name === current ? 'active' : '', 'aria-current': c.name === current ? 'page' : null },
        h('span', { class: `badge badge-${c.type}` }, c.type), ' ', c.name));
    clear(list, regular.map(li), system.length ? h('li', { class: 'coll-sep' }, 'System') : null, system.map(li));
  };
  search.addEventListener('input', fill);
  fill();
  const section = parts[0] || '';
  const nav = h(
    'nav',
    { class: 'topnav', 'aria-label': 'Main' },
    h('a', { href: '#/', class: section === 'c' || section === '' || section === 'new-collection' ? 'active' : '' }, 'Collections'),
    h('a', { href: '#/settings', class: section === 'settings' ? 'active' : '' }, 'Settings'),
    h('a', { href: '#/backups', class: section === 'backups' ? 'active' : '' }, 'Backups'),
  );
  const main = h('main', { id: 'main', tabindex: '-1' });
  clear(
    root,
    h('a', { href: '#main', class: 'skip', onclick: (e) => (e.preventDefault(), main.focus()) }, 'Skip to content'),
    h(
      'header',
      { class: 'topbar' },
      h('span', { class: 'brand' }, 'pocketlog'),
      nav,
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted who' }, auth.record?.email || ''),
      h('button', { class: 'btn btn-small', onclick: () => (auth.clear(), go('#/login')) }, 'Log out'),
    ),
    h(
      'div',
      { class: 'shell' },
      h(
        'aside',
        { class: 'sidebar', 'aria-label': 'Collections' },
        search,
        list,
        h('a', { href: '#/new-collection', class: 'btn btn-block' }, '+ New collection'),
      ),
      main,
    ),
  );
  return main;
}

// ---------------------------------------------------------------- records table

function visibleFields(coll) {
  return (coll.fields || []).filter((f) => f.type !== 'password' && !(f.hidden && f.name === 'tokenKey'));
}

function columnKey(coll) {
  return `pocketlog_cols_${coll.id}`;
}

function loadColumns(coll) {
  const all = visibleFields(coll).map((f) => f.name);
  try {
    const saved = JSON.parse(localStorage.getItem(columnKey(coll)) || 'null');
    if (Array.isArray(saved)) return saved.filter((n) => all.includes(n));
  } catch {
    /* fall through to the default */
  }
  return all.slice(0, 7);
}

/** Plain words become a `~` search over the text-like fields; anything with an operator is a raw filter. */
function buildFilter(coll, q) {
  q = q.trim();
  if (!q) return '';
  if (/[=~<>!]|&&|\|\|/.test(q)) return q;
  const names = (coll.fields || [])
    .filter((f) => ['text', 'email', 'url', 'editor'].includes(f.type) && !f.hidden)
    .map((f) => f.name);
  if (!names.length) return `id ~ ${quote(q)}`;
  return names.map((n) => `${n} ~ ${quote(q)}`).join(' || ');
}

function cellText(field, value) {
  if (value === null || value === undefined || value === '') return '';
  if (field && field.type === 'bool') return value ? 'true' : 'false';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function collectionTabs(coll, active) {
  return h(
    'div',
    { class: 'tabs', role: 'tablist' },
    h('a', { href: `#/c/${enc(coll.name)}`, role: 'tab', 'aria-selected': String(active === 'records'), class: active === 'records' ? 'active' : '' }, 'Records'),
    h('a', { href: `#/c/${enc(coll.name)}/realtime`, role: 'tab', 'aria-selected': String(active === 'realtime'), class: active === 'realtime' ? 'active' : '' }, 'Realtime'),
    h('a', { href: `#/c/${enc(coll.name)}/edit`, role: 'tab', 'aria-selected': String(active === 'edit'), class: active === 'edit' ? 'active' : '' }, 'Edit collection'),
  );
}

async function renderRecords(main, coll) {
  const hasCreated = (coll.fields || []).some((f) => f.name === 'created');
  const view = { page: 1, perPage: 20, sort: hasCreated ? '-created' : '', filterText: '', columns: loadColumns(coll) };
  const fieldsByName = Object.fromEntries((coll.fields || []).map((f) => [f.name, f]));

  const searchInput = h('input', { type: 'search', id: 'records-filter', placeholder: 'Search or filter, e.g. text ~ "hi" && created > "2024-01-01"', 'aria-label': 'Filter records' });
  const filterError = h('div', { class: 'filter-error', 'aria-live': 'polite' });
  const tableWrap = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  const colPicker = h('details', { class: 'col-picker' });

  const fillColumns = () => {
    clear(
      colPicker,
      h('summary', { class: 'btn' }, 'Columns'),
      h('div', { class: 'col-picker-list' },
        visibleFields(coll).map((f) => {
          const id = uid('col');
          return h('label', { for: id },
            h('input', {
              id, type: 'checkbox', checked: view.columns.includes(f.name),
              onchange: (e) => {
                const order = visibleFields(coll).map((x) => x.name);
                view.columns = e.target.checked ? [...view.columns, f.name] : view.columns.filter((n) => n !== f.name);
                view.columns.sort((a, b) => order.indexOf(a) - order.indexOf(b));
                localStorage.setItem(columnKey(coll), JSON.stringify(view.columns));
                load();
              },
            }), ' ', f.name);
        })),
    );
  };
  fillColumns();

  let controller = null;
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const filter = buildFilter(coll, view.filterText);
    let res;
    try {
      res = await api.get(`/api/collections/${enc(coll.name)}/records`, {
        page: view.page, perPage: view.perPage, sort: view.sort, filter,
      }, { signal: controller.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (filter || view.sort) {
        clear(filterError, errorBox(e));
        searchInput.setAttribute('aria-invalid', 'true');
      } else clear(tableWrap, errorBox(e));
      return;
    }
    clear(filterError);
    searchInput.removeAttribute('aria-invalid');
    drawTable(res);
  }

  function sortFor(name) {
    if (view.sort === name) return 'desc';
    if (view.sort === `-${name}`) return 'asc-none';
    return 'asc';
  }

  function drawTable(res) {
    const cols = view.columns.length ? view.columns : ['id'];
    const header = h('tr', {}, cols.map((name) => {
      const dir = view.sort === name ? 'ascending' : view.sort === `-${name}` ? 'descending' : 'none';
      return h('th', { scope: 'col', 'aria-sort': dir },
        h('button', {
          class: 'th-sort', type: 'button', title: `Sort by ${name}`,
          onclick: () => {
            const next = sortFor(name);
            view.sort = next === 'asc' ? name : next === 'desc' ? `-${name}` : '';
            view.page = 1;
            load();
          },
        }, name, dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''));
    }));
    const body = (res.items || []).map((rec) =>
      h('tr', {
        tabindex: '0', class: 'rec-row', dataset: { id: rec.id },
        onclick: () => openRecord(coll, rec, load),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openRecord(coll, rec, load); } },
      }, cols.map((name) => {
        const text = cellText(fieldsByName[name], rec[name]);
        return h('td', { title: text.length > 60 ? text.slice(0, 500) : null }, text.length > 80 ? `${text.slice(0, 80)}…` : text);
      })));
    clear(
      tableWrap,
      h('table', { class: 'records', 'aria-label': `${coll.name} records` },
        h('thead', {}, header),
        h('tbody', {}, body.length ? body : h('tr', {}, h('td', { colspan: cols.length, class: 'empty' }, 'No records found.')))),
    );
    const total = res.totalItems ?? 0;
    const pages = Math.max(1, res.totalPages || 1);
    const from = total ? (res.page - 1) * res.perPage + 1 : 0;
    const to = Math.min(total, res.page * res.perPage);
    const perPage = h('select', { 'aria-label': 'Rows per page', onchange: (e) => { view.perPage = Number(e.target.value); view.page = 1; load(); } },
      [10, 20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === view.perPage }, `${n} / page`)));
    clear(
      pager,
      h('span', { class: 'muted', 'data-testid': 'total' }, `${from}–${to} of ${total}`),
      perPage,
      h('button', { class: 'btn btn-small', disabled: res.page <= 1, onclick: () => { view.page -= 1; load(); } }, '‹ Prev'),
      h('span', {}, `Page ${res.page} of ${pages}`),
      h('button', { class: 'btn btn-small', disabled: res.page >= pages, onclick: () => { view.page += 1; load(); } }, 'Next ›'),
    );
  }

  const canCreate = coll.type !== 'view';
  clear(
    main,
    h('div', { class: 'page-head' },
      h('h2', {}, coll.name, ' ', h('span', { class: `badge badge-${coll.type}` }, coll.type)),
      h('span', { class: 'spacer' }),
      h('button', { class: 'btn', onclick: () => load(), title: 'Reload' }, 'Refresh'),
      canCreate ? h('button', { class: 'btn btn-primary', id: 'new-record', onclick: () => openRecord(coll, null, load) }, '+ New record') : null),
    collectionTabs(coll, 'records'),
    h('form', {
      class: 'toolbar', role: 'search',
      onsubmit: (e) => { e.preventDefault(); view.filterText = searchInput.value; view.page = 1; load(); },
    }, searchInput, h('button', { class: 'btn', type: 'submit' }, 'Apply'), colPicker),
    filterError,
    tableWrap,
    pager,
  );
  await load();
}

// ---------------------------------------------------------------- record panel

function fieldInput(field, value, coll, mode) {
  const id = uid('rf');
  const t = field.type;
  const base = { id, name: field.name };
  if (t === 'bool') {
    const el = h('input', { ...base, type: 'checkbox', checked: !!value });
    return { el: h('label', { class: 'check' }, el, ` ${field.name}`), get: () => el.checked, id, inlineLabel: true };
  }
  if (t === 'number') {
    const el = h('input', { ...base, type: 'number', step: field.onlyInt ? '1' : 'any', value: value ?? '' });
    return { el, get: () => (el.value === '' ? null : Number(el.value)), id };
  }
  if (t === 'email' || t === 'url') {
    const el = h('input', { ...base, type: t, value: value ?? '' });
    return { el, get: () => el.value, id };
  }
  if (t === 'editor') {
    const el = h('textarea', { ...base, rows: 6 });
    el.value = value ?? '';
    return { el, get: () => el.value, id };
  }
  if (t === 'date') {
    const el = h('input', { ...base, type: 'datetime-local', step: '1', value: toLocalInput(value) });
    return { el, get: () => fromLocalInput(el.value), id, hint: 'UTC' };
  }
  if (t === 'autodate') {
    const el = h('input', { ...base, type: 'text', readonly: true, value: value || '(set by the server)' });
    return { el, get: undefined, id };
  }
  if (t === 'select') {
    const values = field.values || [];
    if ((field.maxSelect || 1) <= 1) {
      const el = h('select', base, h('option', { value: '' }, '— none —'), values.map((v) => h('option', { value: v, selected: v === value }, v)));
      return { el, get: () => el.value, id };
    }
    const chosen = new Set(Array.isArray(value) ? value : []);
    const boxes = values.map((v) => h('input', { type: 'checkbox', value: v, checked: chosen.has(v) }));
    const el = h('fieldset', { class: 'multi', id }, h('legend', { class: 'sr-only' }, field.name), values.map((v, i) => h('label', { class: 'check' }, boxes[i], ` ${v}`)));
    return { el, get: () => boxes.filter((b) => b.checked).map((b) => b.value), id };
  }
  if (t === 'json') {
    const el = h('textarea', { ...base, rows: 6, class: 'mono', spellcheck: 'false' });
    el.value = value === null || value === undefined ? '' : JSON.stringify(value, null, 2);
    const status = h('div', { class: 'hint' });
    const check = () => {
      if (el.value.trim() === '') return (status.textContent = 'empty = null'), true;
      try {
        JSON.parse(el.value);
        status.textContent = 'valid JSON';
        status.className = 'hint';
        el.removeAttribute('aria-invalid');
        return true;
      } catch (e) {
        status.textContent = `Invalid JSON: ${e.message}`;
        status.className = 'field-error';
        el.setAttribute('aria-invalid', 'true');
        return false;
      }
    };
    el.addEventListener('input', check);
    check();
    return {
      el: h('div', {}, el, status), id,
      get: () => {
        if (!check()) throw new ApiError(400, { message: `Field ${field.name} is not valid JSON.` });
        return el.value.trim() === '' ? null : JSON.parse(el.value);
      },
    };
  }
  if (t === 'geoPoint') {
    const v = value || { lon: 0, lat: 0 };
    const lon = h('input', { id, type: 'number', step: 'any', value: v.lon, 'aria-label': `${field.name} longitude` });
    const lat = h('input', { type: 'number', step: 'any', value: v.lat, 'aria-label': `${field.name} latitude` });
    return { el: h('div', { class: 'inline' }, 'lon ', lon, ' lat ', lat), get: () => ({ lon: Number(lon.value || 0), lat: Number(lat.value || 0) }), id };
  }
  if (t === 'password') {
    const pw = h('input', { ...base, type: 'password', autocomplete: 'new-password', placeholder: mode === 'edit' ? 'leave empty to keep' : '' });
    const confirm = h('input', { type: 'password', name: `${field.name}Confirm`, autocomplete: 'new-password', 'aria-label': `${field.name} confirm`, placeholder: 'confirm' });
    return {
      el: h('div', { class: 'stack' }, pw, confirm), id, password: true,
      get: () => (pw.value || confirm.value ? { [field.name]: pw.value, [`${field.name}Confirm`]: confirm.value } : undefined),
    };
  }
  if (t === 'relation') return relationPicker(field, value, id);
  if (t === 'file') {
    const existing = Array.isArray(value) ? value : value ? [value] : [];
    const removed = new Set();
    const file = h('input', { ...base, type: 'file', multiple: (field.maxSelect || 1) > 1 });
    const list = h('ul', { class: 'files' }, existing.map((name) => h('li', {},
      h('a', { href: `/api/files/${enc(coll.id)}/${enc('')}`.replace(/\/$/, '') + '', class: 'sr-only' }),
      name, ' ',
      h('label', { class: 'check' }, h('input', { type: 'checkbox', onchange: (e) => (e.target.checked ? removed.add(name) : removed.delete(name)) }), ' remove'))));
    return {
      el: h('div', {}, list, file), id, file: true,
      get: () => ({ files: [...file.files], removed: [...removed] }),
    };
  }
  // text and anything unknown
  const el = h('input', { ...base, type: 'text', value: value ?? '' });
  return { el, get: () => el.value, id };
}

function relationPicker(field, value, id) {
  const multi = (field.maxSelect || 1) > 1;
  let selected = Array.isArray(value) ? [...value] : value ? [value] : [];
  const target = findCollection(field.collectionId);
  const chips = h('div', { class: 'chips' });
  const results = h('ul', { class: 'rel-results', role: 'listbox', 'aria-label': `${field.name} search results` });
  const search = h('input', { id, type: 'search', placeholder: target ? `Search ${target.name}…` : 'Search…', autocomplete: 'off', 'aria-label': `${field.name} search` });
  const labelOf = (rec) => {
    const f = (target?.fields || []).find((x) => x.presentable) || (target?.fields || []).find((x) => ['username', 'name', 'title', 'email', 'text'].includes(x.name));
    return f && rec[f.name] ? `${rec[f.name]} (${rec.id})` : rec.id;
  };
  const drawChips = () =>
    clear(chips, selected.map((rid) => h('span', { class: 'chip' }, rid,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove ${rid}`, onclick: () => { selected = selected.filter((x) => x !== rid); drawChips(); } }, '×'))));
  drawChips();
  let timer;
  const doSearch = async () => {
    if (!target) return clear(results, h('li', { class: 'field-error' }, `Related collection ${field.collectionId} not found.`));
    const q = search.value.trim();
    const textFields = (target.fields || []).filter((f) => ['text', 'email'].includes(f.type) && !f.hidden).map((f) => f.name);
    const filter = q ? [...new Set(['id', ...textFields])].map((n) => `${n} ~ ${quote(q)}`).join(' || ') : '';
    try {
      const res = await api.get(`/api/collections/${enc(target.name)}/records`, { page: 1, perPage: 10, filter, skipTotal: 1 });
      clear(results, (res.items || []).length ? res.items.map((rec) => h('li', {},
        h('button', {
          type: 'button', class: 'rel-option', role: 'option',
          onclick: () => {
            selected = multi ? [...new Set([...selected, rec.id])] : [rec.id];
            drawChips();
            clear(results);
            search.value = '';
            search.focus();
          },
        }, labelOf(rec)))) : h('li', { class: 'muted' }, 'No matches.'));
    } catch (e) {
      clear(results, h('li', {}, errorBox(e)));
    }
  };
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(doSearch, 200); });
  search.addEventListener('focus', () => { if (!results.children.length) doSearch(); });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { const b = results.querySelector('button'); if (b) { e.preventDefault(); b.focus(); } }
  });
  results.addEventListener('keydown', (e) => {
    const btns = [...results.querySelectorAll('button')];
    const i = btns.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' && i < btns.length - 1) { e.preventDefault(); btns[i + 1].focus(); }
    if (e.key === 'ArrowUp') { e.preventDefault(); (i > 0 ? btns[i - 1] : search).focus(); }
  });
  return {
    el: h('div', { class: 'relation' }, chips, search, results), id,
    get: () => (multi ? selected : selected[0] || ''),
  };
}

/** Opens the create/edit panel for `rec` (null = new). `onChange` reloads the table. */
function openRecord(coll, rec, onChange) {
  const mode = rec ? 'edit' : 'create';
  return modal((close) => {
    const panel = h('div', { class: 'panel' });
    const body = h('div', { class: 'panel-body' });
    let tab = 'edit';
    const tabs = h('div', { class: 'tabs', role: 'tablist' });
    const drawTabs = () => clear(tabs,
      h('button', { type: 'button', role: 'tab', class: tab === 'edit' ? 'active' : '', 'aria-selected': String(tab === 'edit'), onclick: () => { tab = 'edit'; drawTabs(); drawEdit(); } }, mode === 'edit' ? 'Edit' : 'New'),
      rec ? h('button', { type: 'button', role: 'tab', id: 'tab-history', class: tab === 'history' ? 'active' : '', 'aria-selected': String(tab === 'history'), onclick: () => { tab = 'history'; drawTabs(); drawHistory(); } }, 'History') : null);

    let current = rec;
    function drawEdit() {
      const inputs = [];
      const errSlots = [];
      const idInput = h('input', { id: uid('rid'), name: 'id', value: current?.id || '', readonly: !!current, placeholder: 'leave empty to auto-generate' });
      const fieldsEls = [];
      for (const f of coll.fields || []) {
        if (f.name === 'id') continue;
        if (f.type === 'password' && !f.system && f.hidden && f.name !== 'password') continue;
        if (f.name === 'tokenKey') continue;
        const inp = fieldInput(f, current ? current[f.name] : undefined, coll, mode);
        inputs.push([f, inp]);
        const slot = h('div', { class: 'err-slot' });
        errSlots.push([slot, inp.password ? [f.name, `${f.name}Confirm`] : [f.name]]);
        if (inp.inlineLabel) fieldsEls.push(h('div', { class: 'form-row' }, inp.el, slot));
        else fieldsEls.push(row(`${f.name}${f.required ? ' *' : ''} · ${f.type}`, inp.el, { id: inp.id, hint: inp.hint || f.help || null, error: slot }));
      }
      const idSlot = h('div', { class: 'err-slot' });
      errSlots.push([idSlot, ['id']]);
      const errSlot = h('div', {});
      // Errors are filled into the existing form so that what was typed stays in place.
      const showError = (err) => {
        clear(errSlot, err ? errorBox(err) : null);
        for (const [slot, names] of errSlots) clear(slot, names.map((n) => fieldError(err, n)));
        const firstBad = panel.querySelector('.field-error');
        (firstBad || errSlot).scrollIntoView({ block: 'nearest' });
      };
      const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'record-save' }, mode === 'edit' ? 'Save changes' : 'Create');
      const form = h('form', {
        class: 'record-form',
        onsubmit: async (e) => {
          e.preventDefault();
          save.disabled = true;
          try {
            const data = {};
            const files = [];
            for (const [f, inp] of inputs) {
              if (!inp.get) continue;
              const v = inp.get();
              if (inp.password) { if (v) Object.assign(data, v); continue; }
              if (inp.file) {
                for (const file of v.files) files.push([(f.maxSelect || 1) > 1 && current ? `${f.name}+` : f.name, file]);
                if (v.removed.length) data[`${f.name}-`] = v.removed;
                continue;
              }
              data[f.name] = v;
            }
            if (!current && idInput.value.trim()) data.id = idInput.value.trim();
            let body = data;
            if (files.length) {
              body = new FormData();
              body.append('@jsonPayload', JSON.stringify(data));
              for (const [k, file] of files) body.append(k, file);
            }
            const saved = current
              ? await api.patch(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}`, body)
              : await api.post(`/api/collections/${enc(coll.name)}/records`, body);
            toast(current ? 'Record saved.' : `Record ${saved.id} created.`, 'success');
            onChange && onChange();
            close(saved);
          } catch (err) {
            showError(err);
          } finally {
            save.disabled = false;
          }
        },
      },
      errSlot,
      row('id', idInput, { error: idSlot }),
      fieldsEls,
      h('div', { class: 'actions' },
        current ? h('button', {
          type: 'button', class: 'btn btn-danger', id: 'record-delete',
          onclick: async () => {
            if (!(await confirmDialog(`Delete record ${current.id}?`, { confirmLabel: 'Delete', danger: true }))) return;
            try {
              await api.del(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}`);
              toast('Record deleted.', 'success');
              onChange && onChange();
              close(null);
            } catch (err) {
              showError(err);
            }
          },
        }, 'Delete') : null,
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn', onclick: () => close(null) }, 'Cancel'),
        save));
      clear(body, form);
    }

    async function drawHistory() {
      clear(body, h('p', { class: 'muted' }, 'Loading history…'));
      let versions;
      try {
        const res = await api.get(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}/history`);
        versions = Array.isArray(res) ? res : res?.items || [];
      } catch (e) {
        if (isMissingEndpoint(e)) {
          return clear(body, h('div', { class: 'notice', 'data-testid': 'not-available' },
            h('strong', {}, 'Record history is not available on this server.'),
            h('p', {}, `GET …/records/${current.id}/history answered ${e.status}: ${e.message}`)));
        }
        return clear(body, errorBox(e));
      }
      const detail = h('div', {});
      clear(body,
        h('p', { class: 'muted' }, `${versions.length} version${versions.length === 1 ? '' : 's'} from the log, oldest first. Restore writes the chosen values as a new version.`),
        h('div', { class: 'table-wrap' }, h('table', { class: 'records history', 'aria-label': 'Versions' },
          h('thead', {}, h('tr', {}, ['seq', 'time', 'action', 'actor', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, versions.length ? versions.map((v) => h('tr', { class: 'version-row' },
            h('td', {}, String(v.seq ?? '')),
            h('td', {}, String(v.time ?? '')),
            h('td', {}, String(v.action ?? '')),
            h('td', {}, actorText(v.actor)),
            h('td', { class: 'row-actions' },
              h('button', { type: 'button', class: 'btn btn-small', onclick: () => clear(detail, h('h4', {}, `Version at seq ${v.seq}`), h('pre', { class: 'json' }, JSON.stringify(v.record, null, 2))) }, 'View'),
              v.record && v.action !== 'delete' ? h('button', {
                type: 'button', class: 'btn btn-small',
                onclick: async () => {
                  if (!(await confirmDialog(`Set the record back to its values at seq ${v.seq}? This writes a new version.`, { confirmLabel: 'Restore version' }))) return;
                  try {
                    current = await api.patch(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}`, writableValues(coll, v.record));
                    toast(`Record restored to seq ${v.seq}.`, 'success');
                    onChange && onChange();
                    drawHistory();
                  } catch (err) {
                    clear(detail, errorBox(err));
                  }
                },
              }, 'Restore') : null))) : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No versions.'))))),
        detail);
    }

    drawTabs();
    drawEdit();
    clear(panel,
      h('div', { class: 'panel-head' },
        h('h3', {}, mode === 'edit' ? `${coll.name} / ${rec.id}` : `New ${coll.name} record`),
        h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Close', onclick: () => close(null) }, '×')),
      tabs, body);
    return panel;
  }, { className: 'drawer', label: rec ? `Record ${rec.id}` : 'New record' });
}

function actorText(actor) {
  if (!actor) return '';
  if (typeof actor === 'string') return actor;
  const coll = actor.collectionId ? findCollection(actor.collectionId) : null;
  const parts = [actor.type, coll ? coll.name : actor.collectionName || actor.collection, actor.email || actor.id].filter(Boolean);
  return parts.join(' ') || JSON.stringify(actor);
}

function writableValues(coll, record) {
  const out = {};
  for (const f of coll.fields || []) {
    if (f.name === 'id' || ['autodate', 'password', 'file'].includes(f.type) || f.name === 'tokenKey') continue;
    if (f.name in record) out[f.name] = record[f.name];
  }
  return out;
}

// ---------------------------------------------------------------- realtime view

function renderRealtime(main, coll) {
  const log = h('ol', { class: 'events', 'aria-live': 'polite', 'aria-label': 'Events' });
  const status = h('div', { class: 'rt-status', 'data-testid': 'rt-status' }, 'Connecting…');
  clear(main,
    h('div', { class: 'page-head' }, h('h2', {}, coll.name, ' — realtime')),
    collectionTabs(coll, 'realtime'),
    h('p', { class: 'muted' }, `Live create/update/delete events on ${coll.name}/* as this superuser sees them. Each event shows its log seq.`),
    status, log);
  let es = null;
  let closed = false;
  state.cleanup.push(() => { closed = true; if (es) es.close(); });
  (async () => {
    // EventSource hides the HTTP status, so ask first whether the endpoint exists.
    const probe = new AbortController();
    try {
      const res = await fetch('/api/realtime', { signal: probe.signal, headers: { Accept: 'text/event-stream' } });
      probe.abort();
      if (res.status === 404 || res.status === 405) {
        return clear(status, h('div', { class: 'notice', 'data-testid': 'not-available' }, h('strong', {}, 'Realtime is not available on this server.'), h('p', {}, `GET /api/realtime answered ${res.status}.`)));
      }
    } catch (e) {
      if (e.name !== 'AbortError') return clear(status, errorBox(new ApiError(0, { message: `Could not reach /api/realtime (${e.message}).` })));
    }
    if (closed) return;
    es = new EventSource('/api/realtime');
    es.addEventListener('PB_CONNECT', async (ev) => {
      try {
        const { clientId } = JSON.parse(ev.data);
        await api.post('/api/realtime', { clientId, subscriptions: [`${coll.name}/*`] });
        status.textContent = `Connected (client ${clientId.slice(0, 8)}…), subscribed to ${coll.name}/*`;
        status.className = 'rt-status ok';
      } catch (e) {
        clear(status, isMissingEndpoint(e) ? h('div', { class: 'notice', 'data-testid': 'not-available' }, h('strong', {}, 'Realtime subscriptions are not available on this server.')) : errorBox(e));
      }
    });
    es.addEventListener(`${coll.name}/*`, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { data = { action: '?', record: ev.data }; }
      const when = new Date().toISOString().replace('T', ' ').slice(0, 23);
      log.prepend(h('li', { class: `event event-${data.action}` },
        h('span', { class: 'badge' }, data.action), ' ',
        h('code', {}, data.record?.id || ''), ' ',
        h('span', { class: 'muted' }, `${when}${ev.lastEventId ? ` · seq ${ev.lastEventId}` : ''}`),
        h('pre', { class: 'json' }, JSON.stringify(data.record, null, 2))));
      while (log.children.length > 200) log.lastChild.remove();
    });
    es.onerror = () => {
      if (closed) return;
      status.textContent = 'Disconnected — reconnecting…';
      status.className = 'rt-status bad';
    };
  })();
}

// ---------------------------------------------------------------- collection editor

function scaffold(type) {
  const base = { name: '', type, listRule: null, viewRule: null, createRule: null, updateRule: null, deleteRule: null, fields: [], indexes: [] };
  if (type === 'view') return { ...base, viewQuery: 'SELECT id FROM users', fields: [] };
  base.fields = [
    { name: 'created', type: 'autodate', onCreate: true, onUpdate: false, system: false, hidden: false, presentable: false },
    { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true, system: false, hidden: false, presentable: false },
  ];
  if (type === 'auth') Object.assign(base, { authRule: '', manageRule: null, passwordAuth: { enabled: true, identityFields: ['email'] } });
  return base;
}

function newField(type) {
  const f = { name: '', type, required: false, hidden: false, presentable: false, system: false };
  if (type === 'autodate') Object.assign(f, { onCreate: true, onUpdate: false });
  if (type === 'relation') Object.assign(f, { collectionId: '', maxSelect: 1, minSelect: 0, cascadeDelete: false });
  if (type === 'select') Object.assign(f, { values: [], maxSelect: 1 });
  if (type === 'file') Object.assign(f, { maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [], protected: false });
  return f;
}

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

function optionInputs(f, onChange) {
  const num = (key, label, { allowNull = false } = {}) => {
    const id = uid('opt');
    return h('label', { for: id, class: 'opt' }, label,
      h('input', { id, type: 'number', value: f[key] ?? '', oninput: (e) => { f[key] = e.target.value === '' ? (allowNull ? null : 0) : Number(e.target.value); } }));
  };
  const text = (key, label, placeholder = '') => {
    const id = uid('opt');
    return h('label', { for: id, class: 'opt' }, label,
      h('input', { id, type: 'text', placeholder, value: f[key] ?? '', oninput: (e) => { f[key] = e.target.value; } }));
  };
  const csv = (key, label, placeholder = '') => {
    const id = uid('opt');
    return h('label', { for: id, class: 'opt' }, label,
      h('input', { id, type: 'text', placeholder, value: (f[key] || []).join(', '), oninput: (e) => { f[key] = list(e.target.value); } }));
  };
  const bool = (key, label) => h('label', { class: 'check opt' }, h('input', { type: 'checkbox', checked: !!f[key], onchange: (e) => { f[key] = e.target.checked; } }), ` ${label}`);
  switch (f.type) {
    case 'text': return [num('min', 'Min length'), num('max', 'Max length'), text('pattern', 'Regex pattern', '^[a-z0-9_]+$'), text('autogeneratePattern', 'Autogenerate pattern', '[a-z0-9]{15}')];
    case 'password': return [num('min', 'Min length'), num('max', 'Max length'), text('pattern', 'Regex pattern')];
    case 'number': return [num('min', 'Min', { allowNull: true }), num('max', 'Max', { allowNull: true }), bool('onlyInt', 'Integers only')];
    case 'email': case 'url': return [csv('onlyDomains', 'Only domains', 'example.com'), csv('exceptDomains', 'Except domains')];
    case 'editor': return [num('maxSize', 'Max size (bytes)'), bool('convertURLs', 'Convert URLs')];
    case 'date': return [text('min', 'Min date', '2024-01-01 00:00:00.000Z'), text('max', 'Max date')];
    case 'autodate': return [bool('onCreate', 'Set on create'), bool('onUpdate', 'Set on update')];
    case 'select': return [csv('values', 'Values (comma separated)', 'a, b, c'), num('maxSelect', 'Max select')];
    case 'json': return [num('maxSize', 'Max size (bytes)')];
    case 'file': return [num('maxSelect', 'Max files'), num('maxSize', 'Max size (bytes)'), csv('mimeTypes', 'MIME types', 'image/png, image/jpeg'), csv('thumbs', 'Thumb sizes', '100x100'), bool('protected', 'Protected')];
    case 'relation': {
      const id = uid('opt');
      return [
        h('label', { for: id, class: 'opt' }, 'Related collection',
          h('select', { id, 'aria-label': 'Related collection', onchange: (e) => { f.collectionId = e.target.value; onChange && onChange(); } },
            h('option', { value: '' }, '— choose —'),
            state.collections.map((c) => h('option', { value: c.id, selected: c.id === f.collectionId }, c.name)))),
        num('minSelect', 'Min select'), num('maxSelect', 'Max select'), bool('cascadeDelete', 'Cascade delete'),
      ];
    }
    default: return [];
  }
}

function renderCollectionEditor(main, coll) {
  const isNew = !coll;
  const draft = isNew ? scaffold('base') : JSON.parse(JSON.stringify(coll));
  let lastError = null;

  function draw() {
    const nameInput = h('input', { id: 'coll-name', value: draft.name, required: true, pattern: '^\\w+$', oninput: (e) => { draft.name = e.target.value; } , readonly: !!(coll && coll.system) });
    const typeSelect = h('select', {
      id: 'coll-type', disabled: !isNew,
      onchange: (e) => { const keep = draft.name; Object.assign(draft, scaffold(e.target.value), { name: keep }); for (const k of AUTH_RULES) if (e.target.value !== 'auth') delete draft[k]; draw(); },
    }, ['base', 'auth', 'view'].map((t) => h('option', { value: t, selected: draft.type === t }, t)));

    const fieldRows = (draft.fields || []).map((f, i) => {
      const locked = !!f.system;
      const nameId = uid('fname');
      const typeId = uid('ftype');
      return h('li', { class: `field-row${locked ? ' system' : ''}`, dataset: { field: f.name || `#${i}` } },
        h('div', { class: 'field-main' },
          h('label', { for: nameId, class: 'sr-only' }, `Field ${i + 1} name`),
          h('input', { id: nameId, class: 'field-name', placeholder: 'field name', value: f.name, readonly: locked, oninput: (e) => { f.name = e.target.value; } }),
          h('label', { for: typeId, class: 'sr-only' }, `Field ${i + 1} type`),
          h('select', { id: typeId, class: 'field-type', disabled: locked || !!f.id,
            onchange: (e) => { draft.fields[i] = { ...newField(e.target.value), name: f.name }; draw(); } },
          FIELD_TYPES.concat(FIELD_TYPES.includes(f.type) ? [] : [f.type]).map((t) => h('option', { value: t, selected: t === f.type }, t))),
          f.type !== 'autodate' ? h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: !!f.required, onchange: (e) => { f.required = e.target.checked; } }), ' required') : null,
          h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: !!f.hidden, onchange: (e) => { f.hidden = e.target.checked; } }), ' hidden'),
          h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: !!f.presentable, onchange: (e) => { f.presentable = e.target.checked; } }), ' presentable'),
          h('span', { class: 'spacer' }),
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Move ${f.name || 'field'} up`, disabled: i === 0, onclick: () => { [draft.fields[i - 1], draft.fields[i]] = [draft.fields[i], draft.fields[i - 1]]; draw(); } }, '↑'),
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Move ${f.name || 'field'} down`, disabled: i === draft.fields.length - 1, onclick: () => { [draft.fields[i + 1], draft.fields[i]] = [draft.fields[i], draft.fields[i + 1]]; draw(); } }, '↓'),
          locked ? h('span', { class: 'muted' }, 'system') : h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Remove field ${f.name}`, onclick: () => { draft.fields.splice(i, 1); draw(); } }, 'Remove')),
        h('div', { class: 'field-opts' }, optionInputs(f)),
        fieldError(lastError, 'fields', i) || fieldError(lastError, 'fields', String(i)));
    });

    const addType = h('select', { id: 'add-field-type', 'aria-label': 'New field type' }, FIELD_TYPES.map((t) => h('option', { value: t }, t)));
    const addField = h('div', { class: 'inline' }, addType,
      h('button', { type: 'button', class: 'btn', id: 'add-field', onclick: () => {
        const f = newField(addType.value);
        // New fields go before created/updated so the autodate pair stays last.
        const at = draft.fields.findIndex((x) => x.type === 'autodate' && ['created', 'updated'].includes(x.name));
        if (at >= 0) draft.fields.splice(at, 0, f); else draft.fields.push(f);
        draw();
        const inputs = main.querySelectorAll('.field-name');
        inputs[at >= 0 ? at : inputs.length - 1]?.focus();
      } }, '+ Add field'));

    const ruleKeys = draft.type === 'auth' ? [...RULES, ...AUTH_RULES] : draft.type === 'view' ? ['listRule', 'viewRule'] : RULES;
    const rules = ruleKeys.map((key) => {
      const id = `rule-${key}`;
      const locked = draft[key] === null || draft[key] === undefined;
      const ta = h('textarea', { id, rows: 2, class: 'mono', disabled: locked, placeholder: locked ? 'Superusers only' : 'empty = everyone; or a filter, e.g. user = @request.auth.id', oninput: (e) => { draft[key] = e.target.value; } });
      ta.value = locked ? '' : draft[key];
      return h('div', { class: 'form-row rule' },
        h('div', { class: 'inline' },
          h('label', { for: id }, RULE_LABELS[key]),
          h('label', { class: 'check' }, h('input', { type: 'checkbox', id: `${id}-lock`, checked: locked, onchange: (e) => { draft[key] = e.target.checked ? null : ''; draw(); document.getElementById(`${id}-lock`)?.focus(); } }), ' superusers only')),
        ta, fieldError(lastError, key));
    });

    const indexes = (draft.indexes || []).map((ix, i) => h('li', { class: 'inline' },
      h('input', { class: 'mono grow', 'aria-label': `Index ${i + 1}`, value: ix, oninput: (e) => { draft.indexes[i] = e.target.value; } }),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => { draft.indexes.splice(i, 1); draw(); } }, 'Remove'),
      fieldError(lastError, 'indexes', i) || fieldError(lastError, 'indexes', String(i))));

    const authOpts = draft.type === 'auth' ? h('section', { class: 'card' },
      h('h3', {}, 'Auth options'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: draft.passwordAuth?.enabled !== false, onchange: (e) => { draft.passwordAuth = { ...(draft.passwordAuth || {}), enabled: e.target.checked }; } }), ' Password auth enabled'),
      row('Identity fields (comma separated; each needs a UNIQUE index)', h('input', { id: 'identity-fields', value: (draft.passwordAuth?.identityFields || []).join(', '), oninput: (e) => { draft.passwordAuth = { ...(draft.passwordAuth || { enabled: true }), identityFields: list(e.target.value) }; } }),
        { error: fieldError(lastError, 'passwordAuth') }),
      draft.authToken ? row('Auth token duration (seconds)', h('input', { id: 'auth-duration', type: 'number', value: draft.authToken.duration, oninput: (e) => { draft.authToken = { ...draft.authToken, duration: Number(e.target.value) }; } }), { error: fieldError(lastError, 'authToken') }) : null) : null;

    const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'collection-save' }, isNew ? 'Create collection' : 'Save changes');
    const form = h('form', {
      class: 'coll-editor',
      onsubmit: async (e) => {
        e.preventDefault();
        save.disabled = true;
        try {
          const body = JSON.parse(JSON.stringify(draft));
          for (const k of ['created', 'updated']) delete body[k];
          if (isNew) delete body.id;
          if (draft.type === 'view') { delete body.fields; for (const k of ['createRule', 'updateRule', 'deleteRule']) delete body[k]; }
          const saved = isNew ? await api.post('/api/collections', body) : await api.patch(`/api/collections/${enc(coll.id)}`, body);
          toast(`Collection ${saved.name} saved.`, 'success');
          await ensureCollections(true);
          go(`#/c/${enc(saved.name)}`);
        } catch (err) {
          lastError = err;
          draw();
          main.querySelector('.error-box')?.scrollIntoView({ block: 'nearest' });
        } finally {
          save.disabled = false;
        }
      },
    },
    lastError ? errorBox(lastError) : null,
    h('section', { class: 'card' },
      h('div', { class: 'grid2' },
        row('Name', nameInput, { error: fieldError(lastError, 'name') }),
        row('Type', typeSelect, { id: 'coll-type', error: fieldError(lastError, 'type') }))),
    draft.type === 'view' ? h('section', { class: 'card' }, h('h3', {}, 'View query'),
      row('SELECT statement', h('textarea', { id: 'view-query', rows: 4, class: 'mono', oninput: (e) => { draft.viewQuery = e.target.value; } }, draft.viewQuery || ''), { error: fieldError(lastError, 'viewQuery') })) : null,
    draft.type !== 'view' ? h('section', { class: 'card' }, h('h3', {}, 'Fields'), h('ul', { class: 'field-list' }, fieldRows), addField) : null,
    h('section', { class: 'card' }, h('h3', {}, 'API rules'),
      h('p', { class: 'muted' }, 'Locked = superusers only. Empty = everyone. Rules are checked by the server on save.'), rules),
    draft.type !== 'view' ? h('section', { class: 'card' }, h('h3', {}, 'Indexes'), h('ul', { class: 'index-list' }, indexes),
      h('button', { type: 'button', class: 'btn', onclick: () => { draft.indexes = [...(draft.indexes || []), `CREATE INDEX idx_${draft.name || 'coll'}_ ON ${draft.name || 'coll'} ()`]; draw(); } }, '+ Add index'),
      fieldError(lastError, 'indexes')) : null,
    authOpts,
    h('div', { class: 'actions sticky' },
      !isNew && !coll.system ? h('button', {
        type: 'button', class: 'btn btn-danger', onclick: async () => {
          if (!(await confirmDialog(`Delete collection ${coll.name} and all its records?`, { confirmLabel: 'Delete collection', danger: true }))) return;
          try {
            await api.del(`/api/collections/${enc(coll.id)}`);
            toast(`Collection ${coll.name} deleted.`, 'success');
            await ensureCollections(true);
            go('#/');
          } catch (err) { lastError = err; draw(); }
        },
      }, 'Delete collection') : null,
      h('span', { class: 'spacer' }),
      save));

    clear(main,
      h('div', { class: 'page-head' }, h('h2', {}, isNew ? 'New collection' : `Edit ${coll.name}`)),
      isNew ? null : collectionTabs(coll, 'edit'),
      form);
  }
  draw();
  if (isNew) main.querySelector('#coll-name')?.focus();
}

// ---------------------------------------------------------------- settings

async function renderSettings(main) {
  clear(main, h('p', { class: 'muted' }, 'Loading settings…'));
  const s = await api.get('/api/settings');
  let lastError = null;
  const draw = () => {
    const appName = h('input', { id: 'set-appName', value: s.meta?.appName || '' });
    const appURL = h('input', { id: 'set-appURL', type: 'url', value: s.meta?.appURL || '' });
    const batchEnabled = h('input', { id: 'set-batch', type: 'checkbox', checked: !!s.batch?.enabled });
    const maxRequests = h('input', { id: 'set-batch-max', type: 'number', value: s.batch?.maxRequests ?? 50 });
    const timeout = h('input', { id: 'set-batch-timeout', type: 'number', value: s.batch?.timeout ?? 3 });
    const maxBody = h('input', { id: 'set-batch-body', type: 'number', value: s.batch?.maxBodySize ?? 0 });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'settings-save' }, 'Save settings');
    clear(main,
      h('div', { class: 'page-head' }, h('h2', {}, 'Settings')),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          save.disabled = true;
          const body = {
            meta: { appName: appName.value, appURL: appURL.value },
            batch: { enabled: batchEnabled.checked, maxRequests: Number(maxRequests.value), timeout: Number(timeout.value), maxBodySize: Number(maxBody.value) },
          };
          try {
            Object.assign(s, await api.patch('/api/settings', body));
            lastError = null;
            toast('Settings saved.', 'success');
          } catch (err) {
            // Keep what was typed on screen next to the error.
            s.meta = { ...(s.meta || {}), ...body.meta };
            s.batch = { ...(s.batch || {}), ...body.batch };
            lastError = err;
          }
          draw();
        },
      },
      lastError ? errorBox(lastError) : null,
      h('section', { class: 'card' }, h('h3', {}, 'Application'),
        row('Application name', appName, { error: fieldError(lastError, 'meta', 'appName') }),
        row('Application URL', appURL, { error: fieldError(lastError, 'meta', 'appURL') })),
      h('section', { class: 'card' }, h('h3', {}, 'Batch API'),
        h('label', { class: 'check' }, batchEnabled, ' Enable the batch API (/api/batch)'),
        h('div', { class: 'grid3' },
          row('Max requests per batch', maxRequests, { error: fieldError(lastError, 'batch', 'maxRequests') }),
          row('Timeout (seconds)', timeout, { error: fieldError(lastError, 'batch', 'timeout') }),
          row('Max body size (bytes, 0 = default)', maxBody, { error: fieldError(lastError, 'batch', 'maxBodySize') }))),
      h('div', { class: 'actions' }, h('span', { class: 'spacer' }), save)));
  };
  draw();
}

// ---------------------------------------------------------------- backups

async function waitForServer() {
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const res = await fetch('/api/health');
      if (res.ok) return true;
    } catch { /* still restarting */ }
  }
  return false;
}

async function renderBackups(main) {
  clear(main, h('p', { class: 'muted' }, 'Loading backups…'));
  let backups;
  try {
    backups = await api.get('/api/backups');
  } catch (e) {
    if (isMissingEndpoint(e)) {
      return clear(main, h('div', { class: 'page-head' }, h('h2', {}, 'Backups')),
        h('div', { class: 'notice', 'data-testid': 'not-available' }, h('strong', {}, 'Backups are not available on this server.'),
          h('p', {}, `GET /api/backups answered ${e.status}: ${e.message}`)));
    }
    throw e;
  }
  backups = Array.isArray(backups) ? backups : [];
  backups.sort((a, b) => String(b.modified).localeCompare(String(a.modified)));
  const msg = h('div', { 'aria-live': 'polite' });
  const restoreAndReload = async (label, fn) => {
    try {
      await fn();
      clear(msg, h('div', { class: 'notice' }, `${label} started; waiting for the server to come back…`));
      await new Promise((r) => setTimeout(r, 1500));
      const ok = await waitForServer();
      if (!ok) return clear(msg, errorBox(new ApiError(0, { message: 'The server did not come back after the restore.' })));
      // A restore rotates every token secret (tokens revoked before it must not come back),
      // so this session's token is gone too: say so and ask for a new login.
      toast(`${label} done. Every token issued before the restore was revoked: log in again.`, 'success');
      state.collections = [];
      auth.clear();
      go('#/login');
    } catch (e) {
      clear(msg, errorBox(e));
    }
  };

  const nameInput = h('input', { id: 'backup-name', placeholder: 'optional, e.g. before_migration.zip', pattern: '^[a-z0-9_\\-]+\\.zip$' });
  const create = h('form', {
    class: 'toolbar',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api.post('/api/backups', nameInput.value.trim() ? { name: nameInput.value.trim() } : {});
        toast('Backup created.', 'success');
        renderBackups(main);
      } catch (err) { clear(msg, errorBox(err)); }
    },
  }, h('label', { for: 'backup-name', class: 'sr-only' }, 'Backup name'), nameInput, h('button', { type: 'submit', class: 'btn btn-primary', id: 'backup-create' }, 'Create backup'));

  const nowIso = new Date().toISOString();
  const atInput = h('input', { id: 'pitr-time', type: 'datetime-local', step: '1', value: toLocalInput(nowIso.replace('T', ' ')) });
  const seqInput = h('input', { id: 'pitr-seq', type: 'number', min: '0', placeholder: 'or a log seq' });
  const pitr = h('form', {
    class: 'card',
    onsubmit: async (e) => {
      e.preventDefault();
      // The server takes a seq or an RFC 3339 time ("2025-01-31T12:00:00Z").
      const at = seqInput.value ? Number(seqInput.value) : atInput.value ? `${fromLocalInput(atInput.value).slice(0, 19).replace(' ', 'T')}Z` : '';
      if (at === '' || at === null) return clear(msg, errorBox(new ApiError(400, { message: 'Pick a time or a seq.' })));
      const label = typeof at === 'number' ? `seq ${at}` : `${at}`;
      if (!(await confirmDialog(`Restore the whole database to ${label}? Changes after it are kept in the log but no longer visible. The server restarts.`, { confirmLabel: 'Restore', danger: true }))) return;
      const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
      const name = `pitr_${stamp}.zip`;
      restoreAndReload(`Restore to ${label}`, async () => {
        await api.post('/api/backups', { name, at });
        await api.post(`/api/backups/${enc(name)}/restore`);
      });
    },
  },
  h('h3', {}, 'Point-in-time restore'),
  h('p', { class: 'muted' }, 'pocketlog keeps every change in its log: pick any moment (UTC) or log seq. A backup of that point is made, then restored.'),
  h('div', { class: 'inline' }, h('label', { for: 'pitr-time' }, 'Time (UTC)'), atInput, h('label', { for: 'pitr-seq', class: 'sr-only' }, 'Log seq'), seqInput,
    h('button', { type: 'submit', class: 'btn btn-danger', id: 'pitr-restore' }, 'Restore to this point')));

  const rows = backups.map((b) => h('tr', { class: 'backup-row', dataset: { key: b.key } },
    h('td', {}, b.key), h('td', {}, fmtSize(b.size)), h('td', {}, String(b.modified ?? '')),
    h('td', { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn btn-small', onclick: async () => {
        try {
          const { token } = await api.post('/api/files/token');
          const a = h('a', { href: `/api/backups/${enc(b.key)}?token=${enc(token)}`, download: b.key });
          document.body.append(a); a.click(); a.remove();
        } catch (e) { clear(msg, errorBox(e)); }
      } }, 'Download'),
      h('button', { type: 'button', class: 'btn btn-small', onclick: async () => {
        if (!(await confirmDialog(`Restore backup ${b.key}? The server restarts with its data.`, { confirmLabel: 'Restore', danger: true }))) return;
        restoreAndReload(`Restore of ${b.key}`, () => api.post(`/api/backups/${enc(b.key)}/restore`));
      } }, 'Restore'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: async () => {
        if (!(await confirmDialog(`Delete backup ${b.key}?`, { confirmLabel: 'Delete', danger: true }))) return;
        try { await api.del(`/api/backups/${enc(b.key)}`); toast('Backup deleted.', 'success'); renderBackups(main); } catch (e) { clear(msg, errorBox(e)); }
      } }, 'Delete'))));

  clear(main,
    h('div', { class: 'page-head' }, h('h2', {}, 'Backups')),
    msg, create,
    h('div', { class: 'table-wrap' }, h('table', { class: 'records', 'aria-label': 'Backups' },
      h('thead', {}, h('tr', {}, ['key', 'size', 'modified', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No backups yet.'))))),
    pitr);
}

// Keep flattenErrors reachable for debugging in the console.
window.pocketlogDashboard = { state, flattenErrors };

boot();
