// The record editor's file field: the stored files with thumbnails (?thumb=100x100), a download
// link each (with a file token when the field is protected) and a remove toggle; a file input
// (multiple when maxSelect > 1) whose picks are listed with previews and can be dropped again.
//
// get() answers { files: File[] to upload, removed: names to remove }; the record panel turns
// them into `field`/`field+` parts and `field-` (PocketBase's modifiers).
import { h, clear, fmtSize } from '../ui.js';
import { fileUrl, fileThumb, isImageName, needsFileToken, fileToken } from '../present.js';

export function fileInput(field, value, coll, base, recId) {
  const multi = (field.maxSelect || 1) > 1;
  const existing = Array.isArray(value) ? value : value ? [value] : [];
  const removed = new Set();
  let picked = [];
  const previews = [];
  let token = '';

  const stored = h('ul', { class: 'files stored', 'aria-label': `${field.name} stored files` });
  const fresh = h('ul', { class: 'files picked', 'aria-label': `${field.name} files to upload` });
  const input = h('input', {
    ...base, type: 'file', multiple: multi,
    accept: (field.mimeTypes || []).length ? field.mimeTypes.join(',') : null,
    onchange: () => {
      const files = [...input.files];
      picked = multi ? [...picked, ...files] : files.slice(0, 1);
      input.value = '';
      drawPicked();
    },
  });

  function drawStored() {
    clear(stored, existing.map((name) => {
      const gone = removed.has(name);
      return h('li', { class: `file-item${gone ? ' removed' : ''}`, dataset: { name } },
        isImageName(name) ? fileThumb(coll, recId, name, token) : null,
        h('a', { class: 'file-download', href: fileUrl(coll, recId, name, { token, download: true }), download: name, title: `Download ${name}` }, name),
        h('button', {
          type: 'button', class: 'btn btn-small file-remove', 'aria-pressed': String(gone),
          'aria-label': `${gone ? 'Keep' : 'Remove'} ${name}`,
          onclick: () => { if (gone) removed.delete(name); else removed.add(name); drawStored(); },
        }, gone ? 'Undo remove' : 'Remove'));
    }));
  }

  function drawPicked() {
    for (const url of previews.splice(0)) URL.revokeObjectURL(url);
    clear(fresh, picked.map((file, i) => {
      let preview = null;
      if (isImageName(file.name)) {
        const url = URL.createObjectURL(file);
        previews.push(url);
        preview = h('img', { class: 'thumb', src: url, alt: `preview of ${file.name}`, width: 32, height: 32 });
      }
      return h('li', { class: 'file-new' }, preview, h('span', {}, file.name), ' ', h('span', { class: 'muted' }, fmtSize(file.size)),
        h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Do not upload ${file.name}`, onclick: () => { picked.splice(i, 1); drawPicked(); } }, '×'));
    }));
  }

  drawStored();
  if (existing.length && needsFileToken(coll, [field.name])) {
    // Protected files need a token for the thumbnail and the download link.
    fileToken().then((t) => { token = t; drawStored(); }).catch(() => {});
  }
  const hint = multi ? `up to ${field.maxSelect} files` : existing.length ? 'a new file replaces the stored one' : null;
  return {
    el: h('div', { class: 'file-field' }, stored, fresh, input, hint ? h('div', { class: 'hint' }, hint) : null),
    id: base.id, file: true,
    get: () => ({ files: [...picked], removed: [...removed] }),
  };
}
