// Settings › Export collections and Import collections.
// Export: the chosen collections' definitions (GET /api/collections, without created/updated)
// as JSON to copy or download. Import: JSON pasted or read from a file, reviewed (new, changed
// and, with "delete missing", deleted collections) before PUT /api/collections/import
// {collections, deleteMissing}; the server validates the whole set and applies all or nothing.
import { api } from '../api.js';
import { h, clear, toast, errorBox, confirmDialog } from '../ui.js';
import { state, ensureCollections, render } from '../core.js';

const EXPORT_PAGE = 500;

function exportable(c) {
  const out = JSON.parse(JSON.stringify(c));
  delete out.created;
  delete out.updated;
  return out;
}

export async function exportSection() {
  const list = await api.get('/api/collections', { perPage: EXPORT_PAGE, page: 1, sort: 'created' });
  const all = list.items || [];
  const chosen = new Set(all.map((c) => c.id));
  const out = h('textarea', { id: 'export-json', class: 'mono', rows: 18, readonly: true, spellcheck: 'false', 'aria-label': 'Exported collections JSON' });
  const fill = () => { out.value = JSON.stringify(all.filter((c) => chosen.has(c.id)).map(exportable), null, 2); };
  fill();
  const picks = h('div', { class: 'export-picks' }, all.map((c) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', checked: true, 'aria-label': `Export ${c.name}`, onchange: (e) => { if (e.target.checked) chosen.add(c.id); else chosen.delete(c.id); fill(); } }),
    ` ${c.name} `)));
  const download = () => {
    const url = URL.createObjectURL(new Blob([out.value], { type: 'application/json' }));
    const a = h('a', { href: url, download: 'pb_schema.json' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return [
    h('p', { class: 'muted' }, 'The definitions of the chosen collections, for Import collections on another server.'),
    picks,
    out,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', id: 'export-copy', onclick: async () => { out.select(); try { await navigator.clipboard.writeText(out.value); toast('Copied.', 'success'); } catch { toast('Select the text and copy it (the browser refused the clipboard).', 'error'); } } }, 'Copy'),
      h('button', { type: 'button', class: 'btn btn-primary', id: 'export-download', onclick: download }, 'Download JSON')),
  ];
}

/** {added, changed, deleted} collection names of an import of `incoming` over `current`. */
export function importDiff(current, incoming, deleteMissing) {
  const find = (c) => current.find((x) => (c.id && x.id === c.id) || x.name === c.name);
  const added = [];
  const changed = [];
  for (const c of incoming) {
    const old = find(c);
    if (!old) added.push(c.name);
    else if (JSON.stringify(exportable({ ...old, ...c })) !== JSON.stringify(exportable(old))) changed.push(c.name);
  }
  const deleted = deleteMissing
    ? current.filter((x) => !x.system && !incoming.some((c) => (c.id && c.id === x.id) || c.name === x.name)).map((x) => x.name)
    : [];
  return { added, changed, deleted };
}

export function importSection() {
  const text = h('textarea', { id: 'import-json', class: 'mono', rows: 14, spellcheck: 'false', 'aria-label': 'Collections JSON to import', placeholder: '[{"name": "posts", "type": "base", "fields": [...]}]' });
  const file = h('input', { type: 'file', id: 'import-file', accept: 'application/json,.json', onchange: async () => { if (file.files[0]) text.value = await file.files[0].text(); } });
  const deleteMissing = h('input', { type: 'checkbox', id: 'import-delete-missing' });
  const msg = h('div', { 'aria-live': 'polite' });
  const review = h('button', {
    type: 'submit', class: 'btn btn-primary', id: 'import-review',
  }, 'Review');
  const form = h('form', {
    class: 'card',
    onsubmit: async (e) => {
      e.preventDefault();
      clear(msg);
      let incoming;
      try {
        incoming = JSON.parse(text.value);
        if (!Array.isArray(incoming)) throw new Error('expected a JSON array of collections');
      } catch (err) {
        return clear(msg, errorBox(new Error(`Invalid collections JSON: ${err.message}`)));
      }
      await ensureCollections(true);
      const diff = importDiff(state.collections, incoming, deleteMissing.checked);
      const lines = [
        diff.added.length ? `New: ${diff.added.join(', ')}` : null,
        diff.changed.length ? `Changed: ${diff.changed.join(', ')}` : null,
        diff.deleted.length ? `Deleted, with all their records: ${diff.deleted.join(', ')}` : null,
      ].filter(Boolean);
      clear(msg, h('div', { class: 'notice', 'data-testid': 'import-diff' }, lines.length ? lines.map((l) => h('p', {}, l)) : h('p', {}, 'No changes.')));
      if (!lines.length) return;
      if (!(await confirmDialog(`Import ${incoming.length} collection(s)? ${lines.join('. ')}.`, { confirmLabel: 'Import', danger: diff.deleted.length > 0 }))) return;
      try {
        await api.put('/api/collections/import', { collections: incoming, deleteMissing: deleteMissing.checked });
        toast('Collections imported.', 'success');
        await ensureCollections(true);
        render();
      } catch (err) {
        clear(msg, errorBox(err));
      }
    },
  },
  h('p', { class: 'muted' }, 'Paste exported collections (or pick the file). Existing collections are matched by id, then name.'),
  text, h('div', { class: 'inline' }, file),
  h('label', { class: 'check' }, deleteMissing, ' Delete the collections (and their records) that are not in the import'),
  h('div', { class: 'actions' }, h('span', { class: 'spacer' }), review));
  return [form, msg];
}
