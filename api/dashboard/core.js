// Shared dashboard state and navigation: the collections list, hash routing helpers and the
// collection tabs. Screens import from here; app.js owns the router.
import { api, enc } from './api.js';
import { h } from './ui.js';

export const root = document.getElementById('app');
export const state = { collections: [], appName: 'pocketlog', cleanup: [] };

let renderFn = () => {};
/** app.js registers the router here (screens call go() without importing app.js). */
export function setRenderer(fn) {
  renderFn = fn;
}
export function render() {
  return renderFn();
}

export function go(hash) {
  if (location.hash === hash) renderFn();
  else location.hash = hash;
}

export function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return parts;
}

export async function ensureCollections(force = false) {
  if (state.collections.length && !force) return;
  const list = await api.get('/api/collections', { perPage: 500, page: 1 });
  state.collections = list.items || [];
}

export function findCollection(nameOrId) {
  return state.collections.find((c) => c.name === nameOrId || c.id === nameOrId);
}

export function collectionTabs(coll, active) {
  return h(
    'div',
    { class: 'tabs', role: 'tablist' },
    h('a', { href: `#/c/${enc(coll.name)}`, role: 'tab', 'aria-selected': String(active === 'records'), class: active === 'records' ? 'active' : '' }, 'Records'),
    coll.type !== 'view' ? h('a', { href: `#/c/${enc(coll.name)}/trash`, role: 'tab', 'aria-selected': String(active === 'trash'), class: active === 'trash' ? 'active' : '' }, 'Trash') : null,
    h('a', { href: `#/c/${enc(coll.name)}/realtime`, role: 'tab', 'aria-selected': String(active === 'realtime'), class: active === 'realtime' ? 'active' : '' }, 'Realtime'),
    h('a', { href: `#/c/${enc(coll.name)}/edit`, role: 'tab', 'aria-selected': String(active === 'edit'), class: active === 'edit' ? 'active' : '' }, 'Edit collection'),
  );
}
