// The Logs screen: the request log (GET /api/logs) with a filter in the ordinary filter syntax
// (`data.status >= 400 && data.method = "GET"`), a chart of requests per hour drawn as inline SVG
// from GET /api/logs/stats (same filter), paging, and a detail drawer per entry
// (GET /api/logs/{id}). Requests made by superusers (this dashboard's own) are hidden unless
// "Include superuser requests" is ticked, as on the reference.
import { api, enc } from '../api.js';
import { h, clear, errorBox, modal } from '../ui.js';

const PER_PAGE = 50;
const LEVELS = { '-4': 'DEBUG', 0: 'INFO', 4: 'WARN', 8: 'ERROR' };
const SVG_NS = 'http://www.w3.org/2000/svg';
const CHART_W = 800;
const CHART_H = 120;
const CHART_PAD = 18;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Bars of requests per bucket (`stats`: [{date, total}]), oldest left. */
export function drawChart(stats) {
  const points = [...stats].sort((a, b) => String(a.date).localeCompare(String(b.date)));
  const total = points.reduce((n, p) => n + (Number(p.total) || 0), 0);
  const chart = svg('svg', {
    class: 'logs-chart', viewBox: `0 0 ${CHART_W} ${CHART_H}`, preserveAspectRatio: 'none',
    role: 'img', 'aria-label': `${total} requests over ${points.length} hour${points.length === 1 ? '' : 's'}`,
    'data-total': total,
  });
  if (!points.length) {
    chart.append(svg('text', { x: CHART_W / 2, y: CHART_H / 2, 'text-anchor': 'middle' }, 'No requests in this range.'));
    return chart;
  }
  const max = Math.max(1, ...points.map((p) => Number(p.total) || 0));
  const slot = (CHART_W - 2 * CHART_PAD) / points.length;
  const barW = Math.max(2, slot * 0.8);
  const usable = CHART_H - 2 * CHART_PAD;
  points.forEach((p, i) => {
    const n = Number(p.total) || 0;
    const bh = Math.max(1, (n / max) * usable);
    chart.append(svg('rect', {
      class: 'bar', x: CHART_PAD + i * slot + (slot - barW) / 2, y: CHART_H - CHART_PAD - bh, width: barW, height: bh,
      'data-date': p.date, 'data-total': n,
    }, svg('title', {}, `${p.date}: ${n} request${n === 1 ? '' : 's'}`)));
  });
  chart.append(
    svg('text', { x: CHART_PAD, y: CHART_H - 4 }, String(points[0].date).slice(0, 16)),
    svg('text', { x: CHART_W - CHART_PAD, y: CHART_H - 4, 'text-anchor': 'end' }, String(points[points.length - 1].date).slice(0, 16)),
    svg('text', { x: CHART_PAD, y: 12 }, `max ${max}/h`),
  );
  return chart;
}

function levelName(level) {
  return LEVELS[level] ?? String(level);
}

async function openLog(id) {
  return modal((close) => {
    const body = h('div', { class: 'panel-body' }, h('p', { class: 'muted' }, 'Loading…'));
    api.get(`/api/logs/${enc(id)}`).then((log) => {
      const rows = [['id', log.id], ['created', log.created], ['level', `${log.level} (${levelName(log.level)})`], ['message', log.message]];
      for (const [k, v] of Object.entries(log.data || {})) rows.push([`data.${k}`, v === null || typeof v !== 'object' ? String(v ?? '') : JSON.stringify(v)]);
      clear(body, h('dl', { class: 'kv log-detail' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        h('h4', {}, 'JSON'), h('pre', { class: 'json' }, JSON.stringify(log, null, 2)));
    }).catch((e) => clear(body, errorBox(e)));
    return h('div', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h3', {}, 'Log entry'), h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Close', onclick: () => close(null) }, '×')),
      body);
  }, { className: 'drawer', label: 'Log entry' });
}

export async function renderLogs(main) {
  const view = { page: 1, filter: '', superusers: false };
  const filterInput = h('input', { type: 'search', id: 'logs-filter', 'aria-label': 'Filter logs', placeholder: 'e.g. data.status >= 400 && data.method = "GET"' });
  const su = h('input', { type: 'checkbox', id: 'logs-superusers' });
  const msg = h('div', { 'aria-live': 'polite' });
  const chartWrap = h('div', { class: 'chart-wrap' });
  const tableWrap = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });

  const effectiveFilter = () => {
    const parts = [];
    if (view.filter.trim()) parts.push(`(${view.filter.trim()})`);
    if (!view.superusers) parts.push('data.auth != "_superusers"');
    return parts.join(' && ');
  };

  let loadSeq = 0;
  async function load() {
    // Only the latest load draws: an earlier answer arriving late is dropped.
    const mine = ++loadSeq;
    const filter = effectiveFilter();
    let list;
    let stats;
    try {
      [list, stats] = await Promise.all([
        api.get('/api/logs', { page: view.page, perPage: PER_PAGE, sort: '-created', filter }),
        api.get('/api/logs/stats', { filter }),
      ]);
    } catch (e) {
      if (mine !== loadSeq) return;
      clear(msg, errorBox(e));
      filterInput.setAttribute('aria-invalid', 'true');
      return;
    }
    if (mine !== loadSeq) return;
    clear(msg);
    filterInput.removeAttribute('aria-invalid');
    clear(chartWrap, drawChart(Array.isArray(stats) ? stats : []));
    const items = list.items || [];
    clear(tableWrap, h('table', { class: 'records logs', 'aria-label': 'Request logs' },
      h('thead', {}, h('tr', {}, ['created', 'level', 'message', 'status', 'time (ms)'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, items.length ? items.map((log) => h('tr', {
        class: 'rec-row log-row', tabindex: '0', dataset: { id: log.id },
        onclick: () => openLog(log.id),
        onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); openLog(log.id); } },
      },
      h('td', {}, log.created),
      h('td', { class: `level-${log.level}` }, levelName(log.level)),
      h('td', {}, log.message),
      h('td', {}, String(log.data?.status ?? '')),
      h('td', {}, log.data?.execTime === undefined ? '' : Number(log.data.execTime).toFixed(2))))
        : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No logs found.')))));
    const pages = Math.max(1, list.totalPages || 1);
    clear(pager,
      h('span', { class: 'muted', 'data-testid': 'logs-total' }, `${list.totalItems ?? items.length} entries`),
      h('button', { class: 'btn btn-small', disabled: view.page <= 1, onclick: () => { view.page -= 1; load(); } }, '‹ Prev'),
      h('span', {}, `Page ${list.page || 1} of ${pages}`),
      h('button', { class: 'btn btn-small', disabled: view.page >= pages, onclick: () => { view.page += 1; load(); } }, 'Next ›'));
  }

  su.addEventListener('change', () => { view.superusers = su.checked; view.page = 1; load(); });
  clear(main,
    h('div', { class: 'page-head' }, h('h2', {}, 'Logs'), h('span', { class: 'spacer' }),
      h('button', { class: 'btn', id: 'logs-refresh', onclick: () => load() }, 'Refresh')),
    h('form', {
      class: 'toolbar', role: 'search',
      onsubmit: (e) => { e.preventDefault(); view.filter = filterInput.value; view.page = 1; load(); },
    }, filterInput, h('button', { class: 'btn', type: 'submit' }, 'Apply'),
    h('label', { class: 'check', for: 'logs-superusers' }, su, ' Include superuser requests')),
    msg, chartWrap, tableWrap, pager);
  await load();
}
