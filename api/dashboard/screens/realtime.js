// The realtime tab: live events of one collection over /api/realtime (SSE).
import { api, ApiError, isMissingEndpoint } from '../api.js';
import { h, clear, errorBox } from '../ui.js';
import { state, collectionTabs } from '../core.js';

export function renderRealtime(main, coll) {
  const log = h('ol', { class: 'events', 'aria-live': 'polite', 'aria-label': 'Events' });
  const status = h('div', { class: 'rt-status', 'data-testid': 'rt-status' }, 'Connecting…');
  clear(main,
    h('div', { class: 'page-head' }, h('h2', {}, coll.name, ' — realtime')),
    collectionTabs(coll, 'realtime'),
    h('p', { class: 'muted' }, `Live create/update/delete events on ${coll.name}/* as this superuser sees them. Each event shows its log seq.`),
    status, log);
  let es = null;
  let closed = false;
  state.cleanup.push(() => { closed = true; if (es) es.close(); });
  (async () => {
    // EventSource hides the HTTP status, so ask first whether the endpoint exists.
    const probe = new AbortController();
    try {
      const res = await fetch('/api/realtime', { signal: probe.signal, headers: { Accept: 'text/event-stream' } });
      probe.abort();
      if (res.status === 404 || res.status === 405) {
        return clear(status, h('div', { class: 'notice', 'data-testid': 'not-available' }, h('strong', {}, 'Realtime is not available on this server.'), h('p', {}, `GET /api/realtime answered ${res.status}.`)));
      }
    } catch (e) {
      if (e.name !== 'AbortError') return clear(status, errorBox(new ApiError(0, { message: `Could not reach /api/realtime (${e.message}).` })));
    }
    if (closed) return;
    es = new EventSource('/api/realtime');
    es.addEventListener('PB_CONNECT', async (ev) => {
      try {
        const { clientId } = JSON.parse(ev.data);
        await api.post('/api/realtime', { clientId, subscriptions: [`${coll.name}/*`] });
        status.textContent = `Connected (client ${clientId.slice(0, 8)}…), subscribed to ${coll.name}/*`;
        status.className = 'rt-status ok';
      } catch (e) {
        clear(status, isMissingEndpoint(e) ? h('div', { class: 'notice', 'data-testid': 'not-available' }, h('strong', {}, 'Realtime subscriptions are not available on this server.')) : errorBox(e));
      }
    });
    es.addEventListener(`${coll.name}/*`, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { data = { action: '?', record: ev.data }; }
      const when = new Date().toISOString().replace('T', ' ').slice(0, 23);
      log.prepend(h('li', { class: `event event-${data.action}` },
        h('span', { class: 'badge' }, data.action), ' ',
        h('code', {}, data.record?.id || ''), ' ',
        h('span', { class: 'muted' }, `${when}${ev.lastEventId ? ` · seq ${ev.lastEventId}` : ''}`),
        h('pre', { class: 'json' }, JSON.stringify(data.record, null, 2))));
      while (log.children.length > 200) log.lastChild.remove();
    });
    es.onerror = () => {
      if (closed) return;
      status.textContent = 'Disconnected — reconnecting…';
      status.className = 'rt-status bad';
    };
  })();
}
