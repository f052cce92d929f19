// Settings › Crons: the scheduled jobs (GET /api/crons: [{id, expression}]) with "Run now"
// (POST /api/crons/{id}, 204 once the job has finished; a failing job's error is shown).
import { api, enc } from '../api.js';
import { h, clear, toast, errorBox } from '../ui.js';

/** Names for the built-in jobs; unknown ids are shown as they are. */
const DESCRIPTIONS = {
  __pbLogsCleanup__: 'Deletes request logs older than the retention',
  __pbOTPCleanup__: 'Deletes expired one-time passwords',
  __pbMFACleanup__: 'Deletes expired MFA sessions',
  __pbDBOptimize__: 'Optimizes the databases (PRAGMA optimize)',
};

export async function cronsSection() {
  const jobs = await api.get('/api/crons');
  const msg = h('div', { 'aria-live': 'polite' });
  const rows = (Array.isArray(jobs) ? jobs : []).map((job) => {
    const run = h('button', {
      type: 'button', class: 'btn btn-small', 'aria-label': `Run ${job.id} now`,
      onclick: async () => {
        run.disabled = true;
        clear(msg);
        try {
          await api.post(`/api/crons/${enc(job.id)}`);
          toast(`Cron job ${job.id} ran.`, 'success');
        } catch (err) {
          clear(msg, errorBox(err));
        } finally {
          run.disabled = false;
        }
      },
    }, 'Run now');
    return h('tr', { class: 'cron-row', dataset: { id: job.id } },
      h('td', {}, h('code', {}, job.id)), h('td', {}, h('code', {}, job.expression)),
      h('td', { class: 'muted' }, DESCRIPTIONS[job.id] || ''), h('td', { class: 'row-actions' }, run));
  });
  return [
    h('p', { class: 'muted' }, 'Jobs run on their schedule (server time, UTC). "Run now" runs one at once and waits for it.'),
    msg,
    h('div', { class: 'table-wrap' }, h('table', { class: 'records', 'aria-label': 'Cron jobs' },
      h('thead', {}, h('tr', {}, ['id', 'schedule', 'what it does', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No cron jobs.'))))),
  ];
}
