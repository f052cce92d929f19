// The records table of one collection: filter/search, sort, paging, column picker.
// Every field is a column by default (the picker's choice is kept per collection); relation
// columns are chips with the related record's display field (loaded with `expand`), file
// columns are thumbnails (images) or file-name chips.
import { api, enc, quote } from '../api.js';
import { h, clear, errorBox, uid } from '../ui.js';
import { collectionTabs, findCollection } from '../core.js';
import { recordLabel, fileThumb, needsFileToken, fileToken } from '../present.js';
import { openRecord } from './record-panel.js';

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
  return all;
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

const toArray = (v) => (Array.isArray(v) ? v : v ? [v] : []);

/** Chips naming the related records of `field` in `rec` (expanded ones by display field). */
function relationChips(field, rec, name) {
  const target = findCollection(field.collectionId);
  const expanded = toArray(rec.expand && rec.expand[name]);
  return toArray(rec[name]).map((rid) => {
    const rel = expanded.find((r) => r && r.id === rid);
    const label = rel ? recordLabel(target, rel) : rid;
    return h('span', { class: 'chip rel-chip', title: `${target ? target.name : field.collectionId} ${rid}`, dataset: { id: rid } }, label);
  });
}

export async function renderRecords(main, coll) {
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
  let token = '';
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const filter = buildFilter(coll, view.filterText);
    let res;
    const expand = view.columns.filter((n) => fieldsByName[n]?.type === 'relation').join(',');
    try {
      res = await api.get(`/api/collections/${enc(coll.name)}/records`, {
        page: view.page, perPage: view.perPage, sort: view.sort, filter, expand,
      }, { signal: controller.signal });
      token = needsFileToken(coll, view.columns) ? await fileToken() : '';
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
        const field = fieldsByName[name];
        if (field?.type === 'relation') return h('td', {}, relationChips(field, rec, name));
        if (field?.type === 'file') return h('td', { class: 'files-cell' }, toArray(rec[name]).map((f) => fileThumb(coll, rec.id, f, token)));
        const text = cellText(field, rec[name]);
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
