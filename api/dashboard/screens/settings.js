// Settings: a sub-navigation like the reference's (#/settings/{section}) and the Application
// section: name and URL, batch API, rate limits (a rules list editor), trusted proxy headers
// and superuser IPs. Every section saves through PATCH /api/settings; the other sections are
// their own modules.
import { api } from '../api.js';
import { h, clear, fieldError, row, uid } from '../ui.js';
import { settingsForm, splitList } from './settings-form.js';
import { mailSection } from './settings-mail.js';
import { storageSection, backupsSection } from './settings-storage.js';
import { cronsSection } from './settings-crons.js';
import { webhooksSection } from './webhooks.js';
import { exportSection, importSection } from './settings-collections.js';
import { renderSql } from './sql.js';

const SECTIONS = [
  ['application', 'Application'],
  ['mail', 'Mail settings'],
  ['storage', 'Files storage'],
  ['backups', 'Backups'],
  ['crons', 'Crons'],
  ['webhooks', 'Webhooks'],
  ['export-collections', 'Export collections'],
  ['import-collections', 'Import collections'],
  ['sql', 'SQL console'],
];

/** Rate limit audiences as the reference names them. */
const AUDIENCES = [['', 'all'], ['@guest', 'guests only'], ['@auth', 'authenticated only']];

export async function renderSettings(main, section) {
  const known = SECTIONS.find(([k]) => k === section);
  const title = known ? known[1] : 'Settings';
  const nav = h('nav', { class: 'subnav', 'aria-label': 'Settings sections' },
    SECTIONS.map(([k, label]) => h('a', { href: `#/settings${k === 'application' ? '' : `/${k}`}`, class: k === section ? 'active' : '', 'aria-current': k === section ? 'page' : null }, label)));
  const head = h('div', { class: 'page-head' }, h('h2', {}, `Settings · ${title}`));
  if (!known) return clear(main, head, nav, h('p', {}, `No settings section "${section}".`));
  if (section === 'sql') return clear(main, head, nav, renderSql());
  if (section === 'crons') return clear(main, head, nav, await cronsSection());
  if (section === 'webhooks') return clear(main, head, nav, await webhooksSection());
  if (section === 'export-collections') return clear(main, head, nav, await exportSection());
  if (section === 'import-collections') return clear(main, head, nav, importSection());
  clear(main, head, nav, h('p', { class: 'muted' }, 'Loading settings…'));
  const s = await api.get('/api/settings');
  const content = {
    application: () => applicationSection(s),
    mail: () => mailSection(s),
    storage: () => storageSection(s),
    backups: () => backupsSection(s),
  }[section]();
  clear(main, head, nav, content);
}

function rateLimitRules(rules, err) {
  const list = h('ul', { class: 'rules-list', 'aria-label': 'Rate limit rules' });
  const draw = () => clear(list, rules.map((r, i) => h('li', { class: 'rate-rule' },
    h('input', { class: 'mono rl-label', 'aria-label': `Rule ${i + 1} label`, placeholder: '/api/, *:auth, users:create…', value: r.label || '', oninput: (e) => { r.label = e.target.value; } }),
    h('select', { class: 'rl-audience', 'aria-label': `Rule ${i + 1} audience`, onchange: (e) => { r.audience = e.target.value; } },
      AUDIENCES.map(([v, l]) => h('option', { value: v, selected: (r.audience || '') === v }, l))),
    h('input', { type: 'number', min: '1', class: 'rl-max', 'aria-label': `Rule ${i + 1} max requests`, value: r.maxRequests ?? '', oninput: (e) => { r.maxRequests = Number(e.target.value); } }),
    h('span', { class: 'muted' }, 'per'),
    h('input', { type: 'number', min: '1', class: 'rl-duration', 'aria-label': `Rule ${i + 1} interval (seconds)`, value: r.duration ?? '', oninput: (e) => { r.duration = Number(e.target.value); } }),
    h('span', { class: 'muted' }, 's'),
    h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Remove rule ${r.label || i + 1}`, onclick: () => { rules.splice(i, 1); draw(); } }, '×'),
    fieldError(err, 'rateLimits', 'rules', String(i)) || fieldError(err, 'rateLimits', 'rules', i))));
  draw();
  return h('div', {}, list,
    h('button', { type: 'button', class: 'btn btn-small', id: 'rl-add', onclick: () => { rules.push({ label: '', audience: '', duration: 10, maxRequests: 100 }); draw(); list.querySelector('li:last-child .rl-label')?.focus(); } }, '+ Add rule'));
}

function applicationSection(s) {
  return settingsForm(s, {
    id: 'settings-save',
    build: (st, err) => {
      const appName = h('input', { id: 'set-appName', value: st.meta?.appName || '' });
      const appURL = h('input', { id: 'set-appURL', type: 'url', value: st.meta?.appURL || '' });
      const batchEnabled = h('input', { id: 'set-batch', type: 'checkbox', checked: !!st.batch?.enabled });
      const maxRequests = h('input', { id: 'set-batch-max', type: 'number', value: st.batch?.maxRequests ?? 50 });
      const timeout = h('input', { id: 'set-batch-timeout', type: 'number', value: st.batch?.timeout ?? 3 });
      const maxBody = h('input', { id: 'set-batch-body', type: 'number', value: st.batch?.maxBodySize ?? 0 });
      const rl = JSON.parse(JSON.stringify(st.rateLimits || { enabled: false, rules: [], excludedIPs: [] }));
      rl.rules = rl.rules || [];
      const rlEnabled = h('input', { id: 'set-rl-enabled', type: 'checkbox', checked: !!rl.enabled });
      const rlExcluded = h('input', { id: 'set-rl-excluded', value: (rl.excludedIPs || []).join(', '), placeholder: '127.0.0.1, 10.0.0.0/8' });
      const proxyHeaders = h('input', { id: 'set-proxy-headers', value: (st.trustedProxy?.headers || []).join(', '), placeholder: 'X-Forwarded-For, X-Real-IP, CF-Connecting-IP' });
      const leftmost = h('input', { id: 'set-proxy-leftmost', type: 'checkbox', checked: !!st.trustedProxy?.useLeftmostIP });
      const suIPs = h('input', { id: 'set-superuser-ips', value: (st.superuserIPs || []).join(', '), placeholder: 'leave empty for no restriction' });
      const exId = uid('rl');
      const content = [
        h('section', { class: 'card' }, h('h3', {}, 'Application'),
          row('Application name', appName, { error: fieldError(err, 'meta', 'appName') }),
          row('Application URL', appURL, { error: fieldError(err, 'meta', 'appURL') })),
        h('section', { class: 'card' }, h('h3', {}, 'Batch API'),
          h('label', { class: 'check' }, batchEnabled, ' Enable the batch API (/api/batch)'),
          h('div', { class: 'grid3' },
            row('Max requests per batch', maxRequests, { error: fieldError(err, 'batch', 'maxRequests') }),
            row('Timeout (seconds)', timeout, { error: fieldError(err, 'batch', 'timeout') }),
            row('Max body size (bytes, 0 = default)', maxBody, { error: fieldError(err, 'batch', 'maxBodySize') }))),
        h('section', { class: 'card', id: 'rate-limits' }, h('h3', {}, 'Rate limiting'),
          h('label', { class: 'check' }, rlEnabled, ' Enable rate limiting'),
          h('p', { class: 'muted' }, 'Label: a path prefix (/api/), collection:action (users:auth, *:create) or action. Max requests per interval, per client IP.'),
          rateLimitRules(rl.rules, err),
          row('Excluded IPs (comma separated)', rlExcluded, { id: exId, error: fieldError(err, 'rateLimits', 'excludedIPs') })),
        h('section', { class: 'card', id: 'trusted-proxy' }, h('h3', {}, 'Trusted proxy'),
          row('Headers with the client IP (comma separated)', proxyHeaders, { error: fieldError(err, 'trustedProxy', 'headers') }),
          h('label', { class: 'check' }, leftmost, ' Use the leftmost IP of the header (else the rightmost, safer)')),
        h('section', { class: 'card', id: 'superuser-ips' }, h('h3', {}, 'Superuser IPs'),
          h('p', { class: 'muted' }, 'Superuser requests from other addresses are refused. Take care not to lock yourself out (`pocketlog superuser` on the server undoes it).'),
          row('Superuser IPs and subnets (comma separated)', suIPs, { error: fieldError(err, 'superuserIPs') })),
      ];
      const collect = () => ({
        meta: { appName: appName.value, appURL: appURL.value },
        batch: { enabled: batchEnabled.checked, maxRequests: Number(maxRequests.value), timeout: Number(timeout.value), maxBodySize: Number(maxBody.value) },
        rateLimits: { enabled: rlEnabled.checked, rules: rl.rules, excludedIPs: splitList(rlExcluded.value) },
        trustedProxy: { headers: splitList(proxyHeaders.value), useLeftmostIP: leftmost.checked },
        superuserIPs: splitList(suIPs.value),
      });
      return { content, collect };
    },
  });
}
