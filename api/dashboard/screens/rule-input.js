// Autocomplete for rule and filter inputs: typing suggests the collection's fields (and, after a
// relation field and a dot, the related collection's), `@request.auth.*` (fields of the auth
// collections), `@request.body.*`, `@request.query.*`, `@request.headers.*`, `@collection.*`
// (collection names, then their fields), the date macros and, after a colon, the modifiers.
// ArrowUp/Down move, Enter or Tab takes the suggestion, Escape closes the list.
import { h, clear } from '../ui.js';
import { state } from '../core.js';

const MAX_SUGGESTIONS = 12;
/** Characters of a rule token: identifiers, dots, @, colons. */
const TOKEN_RE = /[@\w.:]*$/;
const MACROS = [
  '@now', '@second', '@minute', '@hour', '@weekday', '@day', '@month', '@year', '@yesterday',
  '@tomorrow', '@todayStart', '@todayEnd', '@monthStart', '@monthEnd', '@yearStart', '@yearEnd',
];
const REQUEST = ['@request.auth.', '@request.body.', '@request.query.', '@request.headers.', '@request.method', '@request.context', '@collection.'];
const MODIFIERS = [':isset', ':changed', ':length', ':each', ':lower'];
const FIELD_MODIFIERS = [':length', ':each', ':lower'];

function fieldNames(coll) {
  return ((coll && coll.fields) || []).map((f) => f.name).filter(Boolean);
}

/** Field names reachable as `prefix` + name from `coll` (relation fields open a sub-path). */
function pathSuggestions(coll, path, prefix) {
  let current = coll;
  for (const part of path) {
    const f = ((current && current.fields) || []).find((x) => x.name === part);
    if (!f || f.type !== 'relation') return [];
    current = state.collections.find((c) => c.id === f.collectionId || c.name === f.collectionId);
  }
  return fieldNames(current).map((n) => prefix + n);
}

/** Every suggestion for `token` (the text before the caret) in a rule of `coll`. */
export function suggestionsFor(token, coll) {
  const colon = token.lastIndexOf(':');
  if (colon > 0) {
    const base = token.slice(0, colon);
    const mods = base.startsWith('@request.body.') ? MODIFIERS : FIELD_MODIFIERS;
    return mods.map((m) => base + m).filter((s) => s.startsWith(token));
  }
  let out;
  if (token.startsWith('@request.auth.')) {
    const names = new Set(['id', 'collectionId', 'collectionName']);
    for (const c of state.collections) if (c.type === 'auth') for (const n of fieldNames(c)) names.add(n);
    out = [...names].map((n) => `@request.auth.${n}`);
  } else if (token.startsWith('@request.body.')) {
    out = fieldNames(coll).map((n) => `@request.body.${n}`);
  } else if (token.startsWith('@collection.')) {
    const parts = token.slice('@collection.'.length).split('.');
    if (parts.length === 1) out = state.collections.map((c) => `@collection.${c.name}.`);
    else {
      const target = state.collections.find((c) => c.name === parts[0]);
      out = pathSuggestions(target, parts.slice(1, -1), `@collection.${parts.slice(0, -1).join('.')}.`);
    }
  } else if (token.startsWith('@')) {
    out = [...REQUEST, ...MACROS];
  } else if (token.includes('.')) {
    const parts = token.split('.');
    out = pathSuggestions(coll, parts.slice(0, -1), `${parts.slice(0, -1).join('.')}.`);
  } else {
    out = [...fieldNames(coll), ...REQUEST, ...MACROS];
  }
  return out.filter((s) => s.startsWith(token) && s !== token).slice(0, MAX_SUGGESTIONS);
}

/** Wraps `input` (a textarea or input) with the suggestion list; `getColl()` is the collection. */
export function withAutocomplete(input, getColl) {
  const list = h('ul', { class: 'ac-list', role: 'listbox', hidden: true, 'aria-label': 'Suggestions' });
  input.setAttribute('autocomplete', 'off');
  input.setAttribute('aria-autocomplete', 'list');
  let items = [];
  let active = 0;
  let tokenStart = 0;

  const close = () => { list.hidden = true; items = []; };
  const accept = (value) => {
    const caret = input.selectionStart;
    input.value = input.value.slice(0, tokenStart) + value + input.value.slice(caret);
    const pos = tokenStart + value.length;
    input.setSelectionRange(pos, pos);
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.focus();
  };
  const draw = () => {
    clear(list, items.map((s, i) => h('li', {
      role: 'option', 'aria-selected': String(i === active),
      onmousedown: (e) => { e.preventDefault(); accept(s); },
    }, s)));
    list.hidden = !items.length;
  };
  const update = () => {
    const before = input.value.slice(0, input.selectionStart);
    const token = (TOKEN_RE.exec(before) || [''])[0];
    tokenStart = before.length - token.length;
    items = token ? suggestionsFor(token, getColl()) : [];
    active = 0;
    draw();
  };
  input.addEventListener('input', update);
  input.addEventListener('blur', () => setTimeout(close, 150));
  input.addEventListener('keydown', (e) => {
    if (list.hidden || !items.length) return;
    if (e.key === 'ArrowDown') { e.preventDefault(); active = (active + 1) % items.length; draw(); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); active = (active + items.length - 1) % items.length; draw(); }
    else if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); accept(items[active]); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
  });
  return h('div', { class: 'ac-wrap' }, input, list);
}
