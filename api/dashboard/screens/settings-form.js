// One settings form: draws its inputs from the loaded settings, PATCHes /api/settings with the
// partial body it collects, and shows the server's field errors next to the inputs. On an error
// what was typed stays on screen (merged into the local copy, never secrets).
import { api } from '../api.js';
import { h, clear, toast, errorBox } from '../ui.js';

const SECRET_KEYS = new Set(['password', 'secret', 'clientSecret']);

/** Deep-merges `src` into `dst` (objects only; arrays and scalars replace), skipping secrets. */
export function mergeInto(dst, src) {
  for (const [k, v] of Object.entries(src || {})) {
    if (SECRET_KEYS.has(k)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      if (!dst[k] || typeof dst[k] !== 'object') dst[k] = {};
      mergeInto(dst[k], v);
    } else dst[k] = v;
  }
  return dst;
}

/**
 * `build(s, err)` returns `{ content, collect }`: the form's elements and a function answering
 * the PATCH body. `extra(s)` may add buttons next to Save (e.g. a test button).
 */
export function settingsForm(s, { id, build, extra, saved = 'Settings saved.' }) {
  const wrap = h('div', { class: 'settings-form' });
  let lastError = null;
  const draw = () => {
    const { content, collect } = build(s, lastError);
    const save = h('button', { type: 'submit', class: 'btn btn-primary', id }, 'Save changes');
    clear(wrap, h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        save.disabled = true;
        let body;
        try {
          body = collect();
          const res = await api.patch('/api/settings', body);
          for (const k of Object.keys(s)) delete s[k];
          Object.assign(s, res);
          lastError = null;
          toast(saved, 'success');
        } catch (err) {
          if (body) mergeInto(s, body);
          lastError = err;
        }
        draw();
        wrap.querySelector('.error-box')?.scrollIntoView({ block: 'nearest' });
      },
    },
    lastError ? errorBox(lastError) : null,
    content,
    h('div', { class: 'actions' }, extra ? extra(s) : null, h('span', { class: 'spacer' }), save)));
  };
  draw();
  return wrap;
}

/** Comma-separated text <-> list. */
export const splitList = (v) => String(v || '').split(',').map((x) => x.trim()).filter(Boolean);
