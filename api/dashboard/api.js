// HTTP client for the public pocketlog API: the same calls the JS SDK makes, nothing private.
// Every failure becomes an ApiError carrying PocketBase's error envelope {status, message, data}.

const STORE_KEY = 'pocketlog_dashboard_auth';

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && typeof body.message === 'string' && body.message) || `Request failed (HTTP ${status}).`;
    super(message);
    this.status = status;
    this.data = (body && typeof body.data === 'object' && body.data) || {};
  }
}

/** The superuser session, kept in localStorage so a reload stays logged in. */
export const auth = {
  token: '',
  record: null,
  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
      if (saved && saved.token) {
        this.token = saved.token;
        this.record = saved.record;
      }
    } catch {
      /* a corrupt entry is the same as none */
    }
  },
  save(token, record) {
    this.token = token;
    this.record = record;
    localStorage.setItem(STORE_KEY, JSON.stringify({ token, record }));
  },
  clear() {
    this.token = '';
    this.record = null;
    localStorage.removeItem(STORE_KEY);
  },
};

let unauthorizedHandler = () => {};
/** Called when the server answers 401 to a logged-in request (expired or revoked token). */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

function buildUrl(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** One API call. `body` may be a plain object (sent as JSON) or FormData. */
export async function request(method, path, { body, query, signal } = {}) {
  const headers = { 'Accept-Language': 'en-US' };
  if (auth.token) headers.Authorization = auth.token;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(buildUrl(path, query), { method, headers, body: payload, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: `Could not reach the server (${e.message}).` });
  }
  const text = res.status === 204 ? '' : await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json || { message: `${res.status} ${res.statusText}`.trim() });
    if (res.status === 401 && auth.token) unauthorizedHandler(err);
    throw err;
  }
  return json;
}

export const api = {
  get: (path, query, opts) => request('GET', path, { ...opts, query }),
  post: (path, body, query) => request('POST', path, { body: body ?? {}, query }),
  patch: (path, body, query) => request('PATCH', path, { body: body ?? {}, query }),
  put: (path, body, query) => request('PUT', path, { body: body ?? {}, query }),
  del: (path) => request('DELETE', path),
};

export const enc = encodeURIComponent;

/** True when an endpoint itself is missing (not a missing record): the server answered 404/405. */
export function isMissingEndpoint(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405 || err.status === 501);
}

/** Quotes a user string as a filter literal (rules-and-filter syntax). */
export function quote(s) {
  return `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
