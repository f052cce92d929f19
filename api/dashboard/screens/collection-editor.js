// The collection editor: name, type, fields with their options, API rules, indexes.
import { api, enc } from '../api.js';
import { h, clear, toast, errorBox, fieldError, confirmDialog, row, uid } from '../ui.js';
import { state, go, ensureCollections, collectionTabs } from '../core.js';
import { authOptions, authOptionsBody } from './auth-options.js';
import { withAutocomplete } from './rule-input.js';

const FIELD_TYPES = [
  'text', 'editor', 'number', 'bool', 'email', 'url', 'date', 'autodate',
  'select', 'file', 'relation', 'json', 'geoPoint', 'password',
];
const RULES = ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule', 'restoreRule'];
const AUTH_RULES = ['authRule', 'manageRule'];
const RULE_LABELS = {
  listRule: 'List/Search rule', viewRule: 'View rule', createRule: 'Create rule',
  updateRule: 'Update rule', deleteRule: 'Delete rule', authRule: 'Auth rule',
  manageRule: 'Manage rule', restoreRule: 'Restore rule (trash, restore and revert)',
};

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

const SCAFFOLD_SKIP = new Set(['id', 'name', 'type', 'fields', 'indexes', 'created', 'updated', 'system',
  'listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule', 'authRule', 'manageRule', 'restoreRule']);
const AUTH_OPTION_KEYS = ['passwordAuth', 'otp', 'mfa', 'oauth2', 'authAlert', 'authToken', 'passwordResetToken',
  'emailChangeToken', 'verificationToken', 'fileToken', 'verificationTemplate', 'resetPasswordTemplate',
  'confirmEmailChangeTemplate'];
let scaffoldsCache = null;
/** The auth options of the server's auth scaffold (GET /api/collections/meta/scaffolds). */
async function authScaffoldOptions() {
  try {
    scaffoldsCache = scaffoldsCache || (await api.get('/api/collections/meta/scaffolds'));
  } catch {
    return {};
  }
  const out = {};
  for (const [k, v] of Object.entries(scaffoldsCache.auth || {})) if (!SCAFFOLD_SKIP.has(k)) out[k] = v;
  return JSON.parse(JSON.stringify(out));
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

export function renderCollectionEditor(main, coll) {
  const isNew = !coll;
  const draft = isNew ? scaffold('base') : JSON.parse(JSON.stringify(coll));
  // Secrets are write-only: a secret the server sent back anyway is never kept nor re-sent.
  for (const p of draft.oauth2?.providers || []) delete p.clientSecret;
  let lastError = null;

  function draw() {
    const nameInput = h('input', { id: 'coll-name', value: draft.name, required: true, pattern: '^\\w+$', oninput: (e) => { draft.name = e.target.value; } , readonly: !!(coll && coll.system) });
    const typeSelect = h('select', {
      id: 'coll-type', disabled: !isNew,
      onchange: async (e) => {
        const type = e.target.value;
        const keep = draft.name;
        Object.assign(draft, scaffold(type), { name: keep });
        if (type !== 'auth') for (const k of [...AUTH_RULES, ...AUTH_OPTION_KEYS]) delete draft[k];
        // The server's auth scaffold has every auth option with its defaults (templates too).
        if (type === 'auth') Object.assign(draft, await authScaffoldOptions());
        draw();
      },
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
        locked ? ta : withAutocomplete(ta, () => draft), fieldError(lastError, key));
    });

    const indexes = (draft.indexes || []).map((ix, i) => h('li', { class: 'inline' },
      h('input', { class: 'mono grow', 'aria-label': `Index ${i + 1}`, value: ix, oninput: (e) => { draft.indexes[i] = e.target.value; } }),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => { draft.indexes.splice(i, 1); draw(); } }, 'Remove'),
      fieldError(lastError, 'indexes', i) || fieldError(lastError, 'indexes', String(i))));

    const authOpts = draft.type === 'auth' ? h('section', { class: 'card' }, authOptions(draft, lastError, draw)) : null;

    const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'collection-save' }, isNew ? 'Create collection' : 'Save changes');
    const form = h('form', {
      class: 'coll-editor',
      onsubmit: async (e) => {
        e.preventDefault();
        save.disabled = true;
        try {
          const body = authOptionsBody(JSON.parse(JSON.stringify(draft)));
          for (const k of ['created', 'updated']) delete body[k];
          if (isNew) delete body.id;
          if (draft.type === 'view') { delete body.fields; for (const k of ['createRule', 'updateRule', 'deleteRule', 'restoreRule']) delete body[k]; }
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
