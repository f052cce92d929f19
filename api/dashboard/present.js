// How records and files are presented: the display field of a related record (as the reference
// dashboard picks it), file URLs with thumbnails and file tokens for protected files.
//
// Display field: the collection's non-hidden `presentable` fields; when there is none, the first
// field whose name is in FALLBACK_DISPLAY_FIELDS (the reference's order), else the id.
import { api, enc } from './api.js';
import { h } from './ui.js';

/** The reference dashboard's fallback order when no field is marked presentable. */
export const FALLBACK_DISPLAY_FIELDS = [
  'title', 'name', 'slug', 'email', 'username', 'nickname', 'displayName', 'label', 'subject',
  'topic', 'message', 'heading', 'headline', 'header', 'caption', 'key', 'identifier', 'id',
];

/** Thumbnail size used in tables and previews: PocketBase always offers 100x100. */
export const THUMB = '100x100';

/** File tokens live 180 s on the reference; refresh a little before. */
const FILE_TOKEN_TTL_MS = 120_000;

const IMAGE_EXT = /\.(png|jpe?g|gif|webp)$/i;

export function isImageName(name) {
  return IMAGE_EXT.test(String(name || ''));
}

/** Names of the fields that label a record of `coll` (never empty: falls back to `id`). */
export function displayFieldNames(coll) {
  const fields = (coll && coll.fields) || [];
  const presentable = fields.filter((f) => f.presentable && !f.hidden).map((f) => f.name);
  if (presentable.length) return presentable;
  for (const name of FALLBACK_DISPLAY_FIELDS) if (fields.some((f) => f.name === name)) return [name];
  return ['id'];
}

/** A short text naming `rec` (its display fields joined), or its id when they are all empty. */
export function recordLabel(coll, rec) {
  if (!rec) return '';
  const parts = displayFieldNames(coll)
    .map((n) => rec[n])
    .filter((v) => v !== null && v !== undefined && v !== '' && !(Array.isArray(v) && !v.length))
    .map((v) => (Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v)));
  return parts.length ? parts.join(' · ') : rec.id;
}

let tokenCache = { token: '', at: 0 };
/** A file token for protected files (one per ~2 minutes, shared by every screen). */
export async function fileToken() {
  if (tokenCache.token && Date.now() - tokenCache.at < FILE_TOKEN_TTL_MS) return tokenCache.token;
  const res = await api.post('/api/files/token');
  tokenCache = { token: res.token, at: Date.now() };
  return res.token;
}

/** URL of a stored file; `token` for protected files, `thumb` (e.g. 100x100), `download`. */
export function fileUrl(coll, recordId, name, { thumb, token, download } = {}) {
  const q = new URLSearchParams();
  if (thumb) q.set('thumb', thumb);
  if (token) q.set('token', token);
  if (download) q.set('download', '1');
  const qs = q.toString();
  return `/api/files/${enc(coll.id)}/${enc(recordId)}/${enc(name)}${qs ? `?${qs}` : ''}`;
}

/** Does any file field of `coll` (among `names`, when given) need a token? */
export function needsFileToken(coll, names) {
  return (coll.fields || []).some((f) => f.type === 'file' && f.protected && (!names || names.includes(f.name)));
}

/** A thumbnail (images) or a file-name chip (anything else) for one stored file. */
export function fileThumb(coll, recordId, name, token) {
  if (isImageName(name)) {
    return h('img', {
      class: 'thumb', src: fileUrl(coll, recordId, name, { thumb: THUMB, token }), alt: name, title: name,
      loading: 'lazy', width: 32, height: 32,
    });
  }
  return h('span', { class: 'chip file-chip', title: name }, name);
}
