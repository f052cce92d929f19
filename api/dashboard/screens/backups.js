// Backups: create, download, delete, restore, point-in-time restore.
import { api, auth, enc, ApiError, isMissingEndpoint } from '../api.js';
import { h, clear, toast, errorBox, confirmDialog, fmtSize, toLocalInput, fromLocalInput } from '../ui.js';
import { state, go } from '../core.js';

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

export async function renderBackups(main) {
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
