// Settings › Webhooks: the durable webhooks (GET/POST /api/webhooks, PATCH/DELETE
// /api/webhooks/{id}): a list with each endpoint's backlog, a form to create or edit one (url,
// collections, events, filter, a write-only secret, active), and per webhook its delivery log
// (GET …/{id}/deliveries), its dead letters (GET …/{id}/dead) and "replay from position"
// (POST …/{id}/replay). The secret is never shown: the form only sets a new one.
import { api, enc } from '../api.js';
import { h, clear, toast, errorBox, fieldError, row, uid, confirmDialog } from '../ui.js';

const EVENTS = ['create', 'update', 'delete'];

export async function webhooksSection() {
  const root = h('div', { class: 'webhooks' });
  await draw(root);
  return root;
}

async function draw(root, detail) {
  const list = await api.get('/api/webhooks');
  const hooks = list?.items || [];
  const formBox = h('div', { class: 'webhook-form-box' });
  const detailBox = h('div', { class: 'webhook-detail', 'aria-live': 'polite' });
  const rows = hooks.map((hook) => h('tr', { class: 'webhook-row', dataset: { id: hook.id } },
    h('td', {}, h('code', {}, hook.url)),
    h('td', {}, hook.collections.length ? hook.collections.join(', ') : h('span', { class: 'muted' }, 'all')),
    h('td', {}, hook.events.join(', ')),
    h('td', {}, hook.active ? 'active' : h('span', { class: 'muted' }, 'paused')),
    h('td', { class: 'webhook-backlog' }, String(hook.backlog)),
    h('td', { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit webhook ${hook.url}`, onclick: () => clear(formBox, form(root, hook)) }, 'Edit'),
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Deliveries of ${hook.url}`, onclick: () => showLog(detailBox, hook, 'deliveries') }, 'Deliveries'),
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Dead letters of ${hook.url}`, onclick: () => showLog(detailBox, hook, 'dead') }, 'Dead letters'),
      h('button', {
        type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete webhook ${hook.url}`,
        onclick: async () => {
          if (!(await confirmDialog(`Delete the webhook to ${hook.url}? Its cursor, delivery log and dead letters go too.`, { confirmLabel: 'Delete', danger: true }))) return;
          try {
            await api.del(`/api/webhooks/${enc(hook.id)}`);
            toast('Webhook deleted.', 'success');
            await draw(root);
          } catch (err) {
            clear(detailBox, errorBox(err));
          }
        },
      }, 'Delete'))));
  clear(root,
    h('p', { class: 'muted' }, 'Every committed record change a webhook asks for is POSTed to its URL in log order, at least once, signed with X-Pocketlog-Signature: sha256=<HMAC of the body>.'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'records', 'aria-label': 'Webhooks' },
      h('thead', {}, h('tr', {}, ['url', 'collections', 'events', 'state', 'backlog', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No webhooks.'))))),
    h('p', {}, h('button', { type: 'button', class: 'btn btn-primary', id: 'webhook-new', onclick: () => clear(formBox, form(root, null)) }, 'New webhook')),
    formBox,
    detailBox);
  if (detail) await showLog(detailBox, detail.hook, detail.kind);
}

function form(root, hook, err) {
  const ids = { url: uid('wh'), collections: uid('wh'), filter: uid('wh'), secret: uid('wh') };
  const url = h('input', { id: ids.url, class: 'mono', name: 'url', placeholder: 'the endpoint URL (http or https)', value: hook?.url || '' });
  const collections = h('input', { id: ids.collections, name: 'collections', placeholder: 'empty = all collections', value: (hook?.collections || []).join(', ') });
  const filter = h('input', { id: ids.filter, class: 'mono', name: 'filter', placeholder: "status = 'published'", value: hook?.filter || '' });
  const secret = h('input', { id: ids.secret, type: 'password', name: 'secret', autocomplete: 'new-password', placeholder: hook ? 'unchanged' : 'at least 8 characters' });
  const events = EVENTS.map((e) => h('label', { class: 'inline' },
    h('input', { type: 'checkbox', name: `event-${e}`, value: e, checked: hook ? hook.events.includes(e) : true }), ` ${e}`));
  const active = h('input', { type: 'checkbox', name: 'active', checked: hook ? hook.active : true });
  const msg = h('div', { 'aria-live': 'polite' }, err ? errorBox(err) : null);
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, hook ? 'Save webhook' : 'Create webhook');
  const el = h('form', {
    class: 'webhook-form', 'aria-label': hook ? 'Edit webhook' : 'New webhook',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        url: url.value.trim(),
        collections: collections.value.split(',').map((s) => s.trim()).filter(Boolean),
        events: EVENTS.filter((ev) => el.querySelector(`input[name=event-${ev}]`).checked),
        filter: filter.value.trim(),
        active: active.checked,
      };
      if (secret.value) body.secret = secret.value;
      save.disabled = true;
      try {
        if (hook) await api.patch(`/api/webhooks/${enc(hook.id)}`, body);
        else await api.post('/api/webhooks', body);
        toast(hook ? 'Webhook saved.' : 'Webhook created.', 'success');
        await draw(root);
      } catch (error) {
        el.replaceWith(form(root, hook ? { ...hook, ...body } : null, error));
      } finally {
        save.disabled = false;
      }
    },
  },
  h('h3', {}, hook ? 'Edit webhook' : 'New webhook'),
  msg,
  row('URL', url, { id: ids.url, error: fieldError(err, 'url') }),
  row('Collections', collections, { id: ids.collections, hint: 'Comma-separated names; empty for every collection.', error: fieldError(err, 'collections') }),
  h('div', { class: 'form-row' }, h('span', {}, 'Events'), ...events, fieldError(err, 'events')),
  row('Filter', filter, { id: ids.filter, hint: 'Optional, in the rule language; evaluated against the record.', error: fieldError(err, 'filter') }),
  row('Secret', secret, { id: ids.secret, hint: hook ? 'Leave empty to keep the current secret (it is never shown).' : 'The HMAC key of the signature header; it is never shown again.', error: fieldError(err, 'secret') }),
  h('label', { class: 'inline' }, active, ' Active'),
  h('div', { class: 'actions' }, save));
  return el;
}

async function showLog(box, hook, kind) {
  let data;
  try {
    data = await api.get(`/api/webhooks/${enc(hook.id)}/${kind}`);
  } catch (err) {
    return clear(box, errorBox(err));
  }
  const items = data?.items || [];
  const dead = kind === 'dead';
  const head = dead ? ['position', 'action', 'collection', 'record', 'attempts', 'error', 'when']
    : ['position', 'action', 'collection', 'record', 'attempt', 'status', 'error', 'ms', 'when'];
  const rows = items.map((i) => h('tr', { class: dead ? 'dead-row' : 'delivery-row' },
    dead ? [i.position, i.action, i.collection, i.record, i.attempts, i.error, i.created].map((v) => h('td', {}, String(v)))
      : [i.position, i.action, i.collection, i.record, i.attempt, i.status, i.error, i.durationMs, i.created].map((v) => h('td', {}, String(v)))));
  const from = h('input', { type: 'number', min: '0', name: 'replay-from', 'aria-label': 'Replay from position', placeholder: 'position' });
  const replayMsg = h('div', { 'aria-live': 'polite' });
  const replay = h('form', {
    class: 'webhook-replay',
    onsubmit: async (e) => {
      e.preventDefault();
      clear(replayMsg);
      try {
        await api.post(`/api/webhooks/${enc(hook.id)}/replay`, { from: Number(from.value) });
        toast(`Replaying from position ${from.value}.`, 'success');
      } catch (err) {
        clear(replayMsg, errorBox(err));
      }
    },
  }, from, ' ', h('button', { type: 'submit', class: 'btn btn-small' }, 'Replay'), replayMsg);
  clear(box,
    h('h3', {}, `${dead ? 'Dead letters' : 'Deliveries'} · ${hook.url}`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'records', 'aria-label': dead ? 'Dead letters' : 'Deliveries' },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, dead ? 'No dead letters.' : 'No deliveries yet.'))))),
    h('p', { class: 'muted' }, 'Replay delivers every matching event from a log position on again.'),
    replay);
}
