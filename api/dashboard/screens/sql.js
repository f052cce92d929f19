// The SQL console (Settings › SQL): POST /api/sql {query} runs one read-only statement on the
// server (writes are refused there: they must go through the log) and answers
// {execTime, affectedRows, columns: [{name, type, nullable}], rows: [[…]]}, drawn as a table.
// Ctrl/Cmd+Enter runs the query; the last query is kept in sessionStorage.
import { api } from '../api.js';
import { h, clear, errorBox } from '../ui.js';

const LAST_QUERY_KEY = 'pocketlog_sql_last';
const MAX_CELL_CHARS = 200;

function cell(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, 'NULL');
  const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return text.length > MAX_CELL_CHARS ? `${text.slice(0, MAX_CELL_CHARS)}…` : text;
}

export function renderSql(main) {
  const query = h('textarea', { id: 'sql-query', rows: 6, class: 'mono', spellcheck: 'false', 'aria-label': 'SQL query' });
  query.value = sessionStorage.getItem(LAST_QUERY_KEY) || "SELECT id, name, type FROM _collections ORDER BY name LIMIT 20";
  const out = h('div', { class: 'sql-result', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'btn btn-primary', id: 'sql-run' }, 'Run');

  async function execute() {
    run.disabled = true;
    sessionStorage.setItem(LAST_QUERY_KEY, query.value);
    try {
      const res = await api.post('/api/sql', { query: query.value });
      const cols = (res.columns || []).map((c) => c.name);
      const rows = res.rows || [];
      clear(out,
        h('p', { class: 'muted', 'data-testid': 'sql-summary' },
          `${rows.length} row${rows.length === 1 ? '' : 's'} · ${Number(res.execTime || 0)} ms`),
        h('div', { class: 'table-wrap' }, h('table', { class: 'records sql-table', 'aria-label': 'Query result' },
          h('thead', {}, h('tr', {}, (res.columns || []).map((c) => h('th', { scope: 'col', title: `${c.type || ''}${c.nullable ? ', nullable' : ''}` }, c.name)))),
          h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((v) => h('td', {}, cell(v)))))
            : h('tr', {}, h('td', { colspan: Math.max(1, cols.length), class: 'empty' }, 'No rows.'))))));
    } catch (e) {
      clear(out, errorBox(e));
    } finally {
      run.disabled = false;
    }
  }

  query.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); execute(); }
  });
  return [
    h('p', { class: 'muted' }, 'Read-only: only statements SQLite reports as read-only run (with a timeout and a row cap). Writes go through the API so that they are logged.'),
    h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); execute(); } },
      query, h('div', { class: 'actions' }, h('span', { class: 'muted' }, 'Ctrl+Enter to run'), h('span', { class: 'spacer' }), run)),
    out,
  ];
}
