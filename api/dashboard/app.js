// pocketlog admin dashboard: a hash-routed single page app on the public HTTP API.
// This module is the router and the page layout; each screen is its own module in screens/.
//
// Routes:  #/login · #/c/{name} (records) · #/c/{name}/realtime · #/c/{name}/edit ·
//          #/new-collection · #/logs · #/settings[/{section}] (incl. sql) · #/backups · #/cluster ·
//          #/pbinstall/{token} (first-run installer: the link `serve` prints without a superuser) ·
//          #/auth/oauth2-redirect-success|failure (where /api/oauth2-redirect sends the OAuth2
//          popup: a short message, then the popup closes itself; no login needed)
// Every screen renders API failures as messages (errorBox); a failed render shows the error
// instead of leaving the page blank.

import { api, auth, enc, ApiError, onUnauthorized } from './api.js';
import { h, clear, toast, errorBox, flattenErrors } from './ui.js';
import { state, root, go, parseRoute, setRenderer, ensureCollections, findCollection } from './core.js';
import { renderLogin, renderInstaller } from './screens/login.js';
import { renderRecords } from './screens/records.js';
import { renderRealtime } from './screens/realtime.js';
import { renderTrash } from './screens/trash.js';
import { renderCollectionEditor } from './screens/collection-editor.js';
import { renderSettings } from './screens/settings.js';
import { renderBackups } from './screens/backups.js';
import { renderLogs } from './screens/logs.js';
import { renderCluster } from './screens/cluster.js';

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

setRenderer(() => render());

// The OAuth2 popup's last page: the SDK already got the code over realtime; close the popup.
function renderOAuth2Redirect(ok) {
  clear(root, h('div', { class: 'oauth2-redirect', 'data-testid': 'oauth2-redirect' },
    h('h1', {}, ok ? 'Auth completed.' : 'Auth failed.'),
    h('p', {}, ok ? 'You can close this window and go back to the app.'
      : 'The authentication did not complete. Close this window and try again.')));
  window.setTimeout(() => window.close(), ok ? 300 : 3000);
}

async function render() {
  for (const fn of state.cleanup.splice(0)) fn();
  const parts = parseRoute();
  try {
    if (parts[0] === 'auth' && /^oauth2-redirect-(success|failure)$/.test(parts[1] || '')) {
      return renderOAuth2Redirect(parts[1].endsWith('success'));
    }
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
      if (parts[2] === 'trash') return await renderTrash(main, coll);
      return await renderRecords(main, coll);
    }
    if (parts[0] === 'new-collection') return renderCollectionEditor(main, null);
    if (parts[0] === 'settings') return await renderSettings(main, parts[1] || 'application');
    if (parts[0] === 'logs') return await renderLogs(main);
    if (parts[0] === 'backups') return await renderBackups(main);
    if (parts[0] === 'cluster') return await renderCluster(main);
    const first = state.collections.find((c) => !c.system) || state.collections.find((c) => c.name === 'users') || state.collections[0];
    if (first) return go(`#/c/${enc(first.name)}`);
    clear(main, h('p', {}, 'No collections yet.'));
  } catch (e) {
    const target = document.querySelector('main') || root;
    clear(target, errorBox(e), h('button', { class: 'btn', onclick: () => render() }, 'Retry'));
  }
}
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
    h('a', { href: '#/logs', class: section === 'logs' ? 'active' : '' }, 'Logs'),
    h('a', { href: '#/settings', class: section === 'settings' ? 'active' : '' }, 'Settings'),
    h('a', { href: '#/backups', class: section === 'backups' ? 'active' : '' }, 'Backups'),
    h('a', { href: '#/cluster', class: section === 'cluster' ? 'active' : '' }, 'Cluster'),
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

// Keep flattenErrors reachable for debugging in the console.
window.pocketlogDashboard = { state, flattenErrors };

boot();
