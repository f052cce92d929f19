// The Trash tab of a collection: the records deleted from it (read from the log by
// GET /api/collections/{c}/trash, newest delete first), each with a Restore button
// (POST …/records/{id}/restore). What a restore could not bring back (relations to records
// deleted since, files whose bytes are gone) is shown, never hidden.
import { api, enc, isMissingEndpoint } from '../api.js';
import { h, clear, toast, errorBox, confirmDialog } from '../ui.js';
import { collectionTabs } from '../core.js';
import { recordLabel } from '../present.js';

/** A notice listing what an answer reports as missing (`{field: [ids or names]}`), or null. */
export function missingNotice(title, missing, testid) {
  const entries = Object.entries(missing || {}).filter(([, v]) => Array.isArray(v) && v.length);
  if (!entries.length) return null;
  return h('div', { class: 'notice', 'data-testid': testid },
    h('strong', {}, title),
    h('ul', {}, entries.map(([field, values]) => h('li', {}, h('code', {}, field), ': ', values.join(', ')))));
}

export async function renderTrash(main, coll) {
  const list = h('div', { class: 'table-wrap' });
  const notes = h('div', { 'aria-live': 'polite' });

  async function load() {
    let res;
    try {
      res = await api.get(`/api/collections/${enc(coll.name)}/trash`);
    } catch (e) {
      if (isMissingEndpoint(e)) {
        return clear(list, h('div', { class: 'notice', 'data-testid': 'not-available' },
          h('strong', {}, 'The trash is not available on this server.'),
          h('p', {}, `GET …/trash answered ${e.status}: ${e.message}`)));
      }
      return clear(list, errorBox(e));
    }
    const items = res.items || [];
    clear(list,
      h('p', { class: 'muted' }, `${items.length} deleted record${items.length === 1 ? '' : 's'} in the retained log (from position ${res.firstSeq ?? 1}), newest first.`),
      h('table', { class: 'records trash', 'aria-label': `${coll.name} trash` },
        h('thead', {}, h('tr', {}, ['id', 'record', 'deleted', 'position', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, items.length ? items.map((item) => h('tr', { class: 'trash-row', dataset: { id: item.id } },
          h('td', { class: 'mono' }, item.id),
          h('td', {}, recordLabel(coll, item.record || {})),
          h('td', {}, String(item.deletedAt ?? '')),
          h('td', {}, String(item.position ?? '')),
          h('td', { class: 'row-actions' }, h('button', {
            type: 'button', class: 'btn btn-small', 'aria-label': `Restore ${item.id}`,
            onclick: async () => {
              if (!(await confirmDialog(`Restore record ${item.id} as it was before its delete?`, { confirmLabel: 'Restore record' }))) return;
              try {
                const done = await api.post(`/api/collections/${enc(coll.name)}/records/${enc(item.id)}/restore`, {});
                toast(`Record ${item.id} restored.`, 'success');
                clear(notes,
                  missingNotice(`Restored ${item.id}; these relations point at records that no longer exist:`, done.missingRelations, 'broken-relations'),
                  missingNotice(`Restored ${item.id}; these files are no longer stored:`, done.missingFiles, 'missing-files'));
                await load();
              } catch (err) {
                clear(notes, errorBox(err));
              }
            },
          }, 'Restore')))) : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'The trash is empty.')))));
  }

  clear(main,
    h('div', { class: 'page-head' },
      h('h2', {}, coll.name, ' ', h('span', { class: 'badge' }, 'trash')),
      h('span', { class: 'spacer' }),
      h('button', { class: 'btn', onclick: () => load(), title: 'Reload' }, 'Refresh')),
    collectionTabs(coll, 'trash'),
    notes,
    list);
  await load();
}
