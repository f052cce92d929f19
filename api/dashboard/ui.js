// Small DOM helpers: element builder, toasts, dialogs and error rendering.

/**
 * h('button', {class: 'x', onclick: fn}, 'text', child…) builds an element.
 * Attribute values of false/null/undefined are skipped; `on*` keys attach listeners.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/** Flattens PocketBase's nested error data into [path, message] pairs. */
export function flattenErrors(data, prefix = '') {
  const out = [];
  if (!data || typeof data !== 'object') return out;
  if (typeof data.message === 'string' && typeof data.code === 'string') return [[prefix, data.message]];
  for (const [k, v] of Object.entries(data)) out.push(...flattenErrors(v, prefix ? `${prefix}.${k}` : k));
  return out;
}

/** The error message box: the server's message plus each field error. */
export function errorBox(err) {
  if (!err) return null;
  const fields = flattenErrors(err.data);
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('strong', {}, err.message || String(err)),
    fields.length ? h('ul', {}, fields.map(([p, m]) => h('li', {}, p ? `${p}: ${m}` : m))) : null,
  );
}

/** Inline error under one input; `path` is a key path into err.data like ['fields', 0, 'name']. */
export function fieldError(err, ...path) {
  if (!err || !err.data) return null;
  let d = err.data;
  for (const p of path) {
    if (!d || typeof d !== 'object') return null;
    d = d[p];
  }
  if (!d) return null;
  const msgs = typeof d.message === 'string' ? [d.message] : flattenErrors(d).map(([, m]) => m);
  if (!msgs.length) return null;
  return h('div', { class: 'field-error', role: 'alert' }, msgs.join(' '));
}

/** A modal <dialog>; resolves when it closes. `build(close)` returns its content. */
export function modal(build, { className = '', label = 'Dialog' } = {}) {
  const dlg = h('dialog', { class: `modal ${className}`, 'aria-label': label });
  let resolve;
  const done = new Promise((r) => (resolve = r));
  let result;
  const close = (value) => {
    result = value;
    dlg.close();
  };
  dlg.addEventListener('close', () => {
    dlg.remove();
    resolve(result);
  });
  dlg.append(build(close));
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector('[autofocus], input:not([type=hidden]), select, textarea, button');
  if (first) first.focus();
  return done;
}

/** A yes/no confirmation; resolves true when confirmed. */
export function confirmDialog(text, { confirmLabel = 'Confirm', danger = false } = {}) {
  return modal(
    (close) =>
      h(
        'form',
        { method: 'dialog', class: 'confirm', onsubmit: (e) => (e.preventDefault(), close(true)) },
        h('p', {}, text),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: () => close(false) }, 'Cancel'),
          h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary', autofocus: true }, confirmLabel),
        ),
      ),
    { label: 'Confirm' },
  ).then((v) => v === true);
}

/** Labelled form row. */
export function row(label, control, { hint, error, id } = {}) {
  return h(
    'div',
    { class: 'form-row' },
    h('label', { for: id || control.id || null }, label),
    control,
    hint ? h('div', { class: 'hint' }, hint) : null,
    error || null,
  );
}

let idSeq = 0;
export const uid = (p = 'f') => `${p}${++idSeq}`;

export function fmtSize(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** "2024-05-01 10:00:00.000Z" -> value for <input type=datetime-local> (UTC). */
export function toLocalInput(s) {
  if (!s) return '';
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(:\d{2})?)/.exec(s);
  return m ? `${m[1]}T${m[3] ? m[2] : `${m[2]}:00`}` : '';
}

/** <input type=datetime-local> value (taken as UTC) -> "2024-05-01 10:00:00.000Z". */
export function fromLocalInput(v) {
  if (!v) return '';
  const [d, t] = v.split('T');
  const time = t.length === 5 ? `${t}:00` : t.slice(0, 8);
  return `${d} ${time}.000Z`;
}
