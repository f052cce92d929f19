// Settings › Files storage (settings.s3) and Settings › Backups (settings.backups: cron,
// cronMaxKeep, s3): the S3 form (bucket, region, endpoint, access key, secret, force path style)
// with "Test connection" (POST /api/settings/test/s3 {filesystem: "storage" | "backups"}, the
// reference's shape; its answer, success or the error, is shown under the form). The secret is
// write-only: the API never returns it and an empty input keeps the stored one. Testing tests
// the saved settings, so save first.
import { api } from '../api.js';
import { h, clear, toast, errorBox, fieldError, row } from '../ui.js';
import { settingsForm } from './settings-form.js';

/** The S3 inputs for `cfg` (settings.s3 or settings.backups.s3); `path` is its error path. */
function s3Inputs(prefix, cfg, err, path) {
  cfg = cfg || {};
  const el = {
    enabled: h('input', { id: `${prefix}-enabled`, type: 'checkbox', checked: !!cfg.enabled }),
    bucket: h('input', { id: `${prefix}-bucket`, value: cfg.bucket || '' }),
    region: h('input', { id: `${prefix}-region`, value: cfg.region || '' }),
    endpoint: h('input', { id: `${prefix}-endpoint`, value: cfg.endpoint || '', placeholder: 'the S3 endpoint URL, e.g. s3.example.com' }),
    accessKey: h('input', { id: `${prefix}-access-key`, value: cfg.accessKey || '', autocomplete: 'off' }),
    secret: h('input', { id: `${prefix}-secret`, type: 'password', autocomplete: 'new-password', placeholder: 'stored — leave empty to keep' }),
    forcePathStyle: h('input', { id: `${prefix}-path-style`, type: 'checkbox', checked: !!cfg.forcePathStyle }),
  };
  const content = [
    h('label', { class: 'check' }, el.enabled, ' Use S3-compatible object storage'),
    h('div', { class: 'grid2' },
      row('Endpoint', el.endpoint, { error: fieldError(err, ...path, 'endpoint') }),
      row('Bucket', el.bucket, { error: fieldError(err, ...path, 'bucket') }),
      row('Region', el.region, { error: fieldError(err, ...path, 'region') }),
      row('Access key', el.accessKey, { error: fieldError(err, ...path, 'accessKey') }),
      row('Secret', el.secret, { error: fieldError(err, ...path, 'secret') })),
    h('label', { class: 'check' }, el.forcePathStyle, ' Force path-style addressing (bucket in the path, for MinIO and similar)'),
  ];
  const collect = () => {
    const out = {
      enabled: el.enabled.checked, bucket: el.bucket.value, region: el.region.value, endpoint: el.endpoint.value,
      accessKey: el.accessKey.value, forcePathStyle: el.forcePathStyle.checked,
    };
    if (el.secret.value) out.secret = el.secret.value;
    return out;
  };
  return { content, collect };
}

/** "Test connection" and the place its answer is shown. */
function testButton(filesystem, slot) {
  const btn = h('button', {
    type: 'button', class: 'btn', id: `s3-test-${filesystem}`,
    onclick: async () => {
      btn.disabled = true;
      clear(slot, h('p', { class: 'muted' }, 'Testing the S3 connection…'));
      try {
        await api.post('/api/settings/test/s3', { filesystem });
        clear(slot, h('div', { class: 'notice ok', 'data-testid': 's3-test-ok' }, 'S3 connection successful.'));
        toast('S3 connection successful.', 'success');
      } catch (err) {
        clear(slot, h('div', { 'data-testid': 's3-test-error' }, errorBox(err)));
      } finally {
        btn.disabled = false;
      }
    },
  }, 'Test connection');
  return btn;
}

export function storageSection(s) {
  const slot = h('div', { class: 's3-test-result', 'aria-live': 'polite' });
  return h('div', {},
    settingsForm(s, {
      id: 'storage-save',
      extra: () => testButton('storage', slot),
      build: (st, err) => {
        const s3 = s3Inputs('s3', st.s3, err, ['s3']);
        return {
          content: h('section', { class: 'card' }, h('h3', {}, 'Files storage'),
            h('p', { class: 'muted' }, 'By default uploaded files are stored in pb_data/storage. With S3 enabled new uploads go to the bucket.'),
            s3.content),
          collect: () => ({ s3: s3.collect() }),
        };
      },
    }),
    slot);
}

export function backupsSection(s) {
  const slot = h('div', { class: 's3-test-result', 'aria-live': 'polite' });
  return h('div', {},
    h('p', {}, 'Create, download and restore backups on the ', h('a', { href: '#/backups' }, 'Backups'), ' screen.'),
    settingsForm(s, {
      id: 'backups-save',
      extra: () => testButton('backups', slot),
      build: (st, err) => {
        const b = st.backups || {};
        const cron = h('input', { id: 'backups-cron', class: 'mono', value: b.cron || '', placeholder: '0 0 * * * (empty = no automatic backups)' });
        const keep = h('input', { id: 'backups-keep', type: 'number', min: '1', value: b.cronMaxKeep ?? 3 });
        const s3 = s3Inputs('backups-s3', b.s3, err, ['backups', 's3']);
        return {
          content: [
            h('section', { class: 'card' }, h('h3', {}, 'Automatic backups'),
              h('div', { class: 'grid2' },
                row('Cron expression', cron, { error: fieldError(err, 'backups', 'cron') }),
                row('Keep the last N automatic backups', keep, { error: fieldError(err, 'backups', 'cronMaxKeep') }))),
            h('section', { class: 'card' }, h('h3', {}, 'Store backups in S3'), s3.content),
          ],
          collect: () => ({ backups: { cron: cron.value, cronMaxKeep: Number(keep.value), s3: s3.collect() } }),
        };
      },
    }),
    slot);
}
