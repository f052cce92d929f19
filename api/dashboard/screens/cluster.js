// The cluster screen (#/cluster): this node's cluster status from GET /api/cluster — its role,
// the leader (node and URL), the epoch, the positions (applied here, the stream's last, the
// leader's acknowledged) and the lag (positions, ms), NATS connectivity, a degraded state's
// error and a discarded unreplicated tail. Refreshed every REFRESH_MS while shown; on the leader
// a "Step down" button (POST /api/cluster/step-down, confirmed) hands the lease over. A server
// without --cluster answers 404: the screen says so.
import { api } from '../api.js';
import { h, clear, errorBox, toast, confirmDialog } from '../ui.js';
import { state } from '../core.js';

const REFRESH_MS = 2000;

function item(label, value, testid) {
  return [h('dt', {}, label), h('dd', { 'data-testid': testid }, value === null || value === undefined ? '–' : String(value))];
}

export async function renderCluster(main) {
  const body = h('div', { class: 'cluster', 'aria-live': 'polite' });
  clear(main, h('h1', {}, 'Cluster'), body);
  let timer = null;
  async function refresh() {
    let s;
    try {
      s = await api.get('/api/cluster');
    } catch (e) {
      if (e.status === 404) {
        clear(body, h('p', { class: 'muted', 'data-testid': 'cluster-none' }, 'This server does not run in a cluster (start it with --cluster).'));
        return;
      }
      clear(body, errorBox(e));
      return;
    }
    const leader = s.leader ? `${s.leader.node} (${s.leader.http})` : 'none (failover)';
    const children = [
      h('dl', { class: 'card cluster-status' },
        item('Cluster', s.name, 'cluster-name'),
        item('This node', s.node, 'cluster-node'),
        item('Role', s.role, 'cluster-role'),
        item('Leader', leader, 'cluster-leader'),
        item('Epoch', s.epoch, 'cluster-epoch'),
        item('Replication', s.replicate, 'cluster-replicate'),
        item('Applied position', s.appliedSeq, 'cluster-applied'),
        item('Stream position', s.streamSeq, 'cluster-stream'),
        item('Acknowledged (leader)', s.role === 'leader' ? s.ackedSeq : null, 'cluster-acked'),
        item('Lag', `${s.lagPositions} positions · ${s.lagMs} ms`, 'cluster-lag'),
        item('NATS', s.connected ? 'connected' : 'unreachable', 'cluster-connected')),
    ];
    if (s.error) children.push(h('p', { class: 'error', 'data-testid': 'cluster-error' }, s.error));
    if (s.discarded) {
      children.push(h('p', { class: 'muted', 'data-testid': 'cluster-discarded' },
        `Moved aside at rejoin: positions ${s.discarded.from}–${s.discarded.to} (unreplicated), kept in ${s.discarded.keptIn.join(', ')}`));
    }
    if (s.role === 'leader') {
      children.push(h('div', { class: 'actions' }, h('button', {
        class: 'btn', id: 'cluster-step-down',
        onclick: async () => {
          if (!(await confirmDialog('Give the lease up? Another node takes over as the leader.', { confirmLabel: 'Step down' }))) return;
          try {
            await api.post('/api/cluster/step-down');
            toast('Stepped down: another node takes over.');
            refresh();
          } catch (e) {
            toast(e.message, 'error');
          }
        },
      }, 'Step down')));
    }
    clear(body, ...children);
  }
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
  state.cleanup.push(() => clearInterval(timer));
}
