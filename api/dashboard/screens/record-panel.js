// The record drawer: create/edit form with one input per field type, and the history tab.
import { api, enc, quote, ApiError, isMissingEndpoint } from '../api.js';
import { missingNotice } from './trash.js';
import { h, clear, toast, errorBox, fieldError, modal, confirmDialog, row, uid, toLocalInput, fromLocalInput } from '../ui.js';
import { findCollection } from '../core.js';
import { fileInput } from './file-input.js';
import { recordLabel } from '../present.js';

function fieldInput(field, value, coll, mode, recId, expand) {
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
  if (t === 'relation') return relationPicker(field, value, id, expand && expand[field.name]);
  if (t === 'file') return fileInput(field, value, coll, base, recId);
  // text and anything unknown
  const el = h('input', { ...base, type: 'text', value: value ?? '' });
  return { el, get: () => el.value, id };
}

const toArrayOf = (v) => (Array.isArray(v) ? v : v ? [v] : []);

function relationPicker(field, value, id, expanded) {
  const multi = (field.maxSelect || 1) > 1;
  let selected = Array.isArray(value) ? [...value] : value ? [value] : [];
  const target = findCollection(field.collectionId);
  const chips = h('div', { class: 'chips' });
  const results = h('ul', { class: 'rel-results', role: 'listbox', 'aria-label': `${field.name} search results` });
  const search = h('input', { id, type: 'search', placeholder: target ? `Search ${target.name}…` : 'Search…', autocomplete: 'off', 'aria-label': `${field.name} search` });
  // Labels of the chosen records: from the record's expand, then from each pick.
  const labels = new Map(toArrayOf(expanded).map((r) => [r.id, recordLabel(target, r)]));
  const labelOf = (rec) => {
    const label = recordLabel(target, rec);
    return label && label !== rec.id ? `${label} (${rec.id})` : rec.id;
  };
  const drawChips = () =>
    clear(chips, selected.map((rid) => h('span', { class: 'chip' }, labels.has(rid) && labels.get(rid) !== rid ? `${labels.get(rid)} · ` : '', rid,
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
            labels.set(rec.id, recordLabel(target, rec));
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
export function openRecord(coll, rec, onChange) {
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
        const inp = fieldInput(f, current ? current[f.name] : undefined, coll, mode, current?.id, current?.expand);
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
                // A single-file field's new upload replaces the stored file by itself.
                const replaces = (f.maxSelect || 1) <= 1 && v.files.length;
                if (v.removed.length && !replaces) data[`${f.name}-`] = v.removed;
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

    async function drawHistory(notice = null) {
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
      const detail = h('div', {}, notice);
      clear(body,
        h('p', { class: 'muted' }, `${versions.length} version${versions.length === 1 ? '' : 's'} from the log, oldest first. Revert writes the chosen version back as a new one.`),
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
                  if (!(await confirmDialog(`Set the record back to its values at seq ${v.seq}? This writes a new version.`, { confirmLabel: 'Revert to this version' }))) return;
                  try {
                    const done = await api.post(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}/revert`, { position: v.seq });
                    current = done.record;
                    toast(`Record reverted to seq ${v.seq}.`, 'success');
                    onChange && onChange();
                    await drawHistory(missingNotice('These relations point at records that no longer exist:', done.missingRelations, 'broken-relations'));
                  } catch (err) {
                    if (!isMissingEndpoint(err)) return clear(detail, errorBox(err));
                    // A server without the revert endpoint: write the values as an update.
                    try {
                      current = await api.patch(`/api/collections/${enc(coll.name)}/records/${enc(current.id)}`, writableValues(coll, v.record));
                      toast(`Record restored to seq ${v.seq}.`, 'success');
                      onChange && onChange();
                      drawHistory();
                    } catch (err2) {
                      clear(detail, errorBox(err2));
                    }
                  }
                },
              }, 'Revert') : null))) : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No versions.'))))),
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
