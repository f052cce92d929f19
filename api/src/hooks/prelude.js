// pocketlog's JSVM prelude: PocketBase's hook API (names and semantics of its
// `pb_data/types.d.ts`) written in JavaScript over one native entry point,
// `__pl_native(op, json) -> json`. Evaluated in every VM before the hook files.
//
// Invariants:
// - Hook files only register (routes, hooks, crons); nothing here writes at load time.
// - Writes (`$app.save`, `$app.delete`) are collected per invocation in `__pl.writes` and
//   handed back to Rust, which commits them in ONE log commit (joined with the request's own
//   write when there is one). A write outside an invocation is an error.
"use strict";

var __pl = { routes: [], use: [], hooks: {}, crons: [], writes: null };

function __native(op, arg) {
  var out = JSON.parse(__pl_native(op, JSON.stringify(arg === undefined ? null : arg)));
  if (out.err !== undefined) {
    var err = out.status ? new ApiError(out.status, out.err, out.data) : new Error(out.err);
    throw err;
  }
  return out.ok;
}

// ---- errors -------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message, data) {
    super(message === undefined || message === null ? "" : String(message));
    this.name = "ApiError";
    this.status = status || 400;
    this.data = data || {};
  }
}
class BadRequestError extends ApiError {
  constructor(message, data) { super(400, message || "Something went wrong while processing your request.", data); }
}
class NotFoundError extends ApiError {
  constructor(message, data) { super(404, message || "The requested resource wasn't found.", data); }
}
class ForbiddenError extends ApiError {
  constructor(message, data) { super(403, message || "You are not allowed to perform this request.", data); }
}
class UnauthorizedError extends ApiError {
  constructor(message, data) { super(401, message || "Missing or invalid authentication.", data); }
}
class TooManyRequestsError extends ApiError {
  constructor(message, data) { super(429, message || "Too Many Requests.", data); }
}
class InternalServerError extends ApiError {
  constructor(message, data) { super(500, message || "Something went wrong while processing your request.", data); }
}

function __errorOut(err) {
  if (err instanceof ApiError) {
    return { error: { status: err.status, message: err.message, data: err.data || {} } };
  }
  var text = err && err.stack ? String(err) + "\n" + err.stack : String(err);
  return { error: { status: 0, message: "", cause: text } };
}

// ---- models -------------------------------------------------------------------------------
function __randomId() {
  return $security.randomStringWithAlphabet(15, "abcdefghijklmnopqrstuvwxyz0123456789");
}

class Record {
  constructor(collection, data) {
    this.__collection = collection instanceof Collection ? collection : (collection ? new Collection(collection) : null);
    this.__data = {};
    this.__changed = {};
    this.__isNew = true;
    if (data) { for (var k in data) { this.set(k, data[k]); } }
  }
  static __load(collection, data) {
    var r = new Record(collection);
    r.__data = Object.assign({}, data);
    r.__isNew = false;
    return r;
  }
  get id() { return this.__data.id || ""; }
  set id(v) { this.set("id", v); }
  collection() { return this.__collection; }
  tableName() { return this.__collection ? this.__collection.name : ""; }
  isNew() { return this.__isNew; }
  markAsNew() { this.__isNew = true; }
  markAsNotNew() { this.__isNew = false; }
  get(key) { var v = this.__data[key]; return v === undefined ? null : v; }
  set(key, value) { this.__data[key] = value; this.__changed[key] = true; }
  load(data) { for (var k in data) { this.set(k, data[k]); } }
  getString(key) { var v = this.get(key); return v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)); }
  getInt(key) { var v = Number(this.get(key)); return isFinite(v) ? Math.trunc(v) : 0; }
  getFloat(key) { var v = Number(this.get(key)); return isFinite(v) ? v : 0; }
  getBool(key) { var v = this.get(key); return v === true || v === "true" || v === 1 || v === "1"; }
  getStringSlice(key) { var v = this.get(key); if (v === null || v === "") return []; return Array.isArray(v) ? v.map(String) : [String(v)]; }
  getDateTime(key) { return this.getString(key); }
  email() { return this.getString("email"); }
  setEmail(v) { this.set("email", v); }
  verified() { return this.getBool("verified"); }
  setVerified(v) { this.set("verified", !!v); }
  setPassword(v) { this.set("password", v); }
  fieldsData() { return Object.assign({}, this.__data); }
  publicExport() { return this.toJSON(); }
  toJSON() {
    var out = {};
    if (this.__collection) { out.collectionId = this.__collection.id; out.collectionName = this.__collection.name; }
    return Object.assign(out, this.__data);
  }
}

class FieldsList {
  constructor(list) { this.__list = (list || []).map(function (f) { return Object.assign({}, f); }); }
  add() { for (var i = 0; i < arguments.length; i++) { var f = Object.assign({}, arguments[i]); var at = this.__list.findIndex(function (x) { return x.name === f.name; }); if (at >= 0) this.__list[at] = f; else this.__list.push(f); } }
  addAt(index) {
    for (var i = 1; i < arguments.length; i++) {
      var f = Object.assign({}, arguments[i]);
      this.__list = this.__list.filter(function (x) { return x.name !== f.name && (!f.id || x.id !== f.id); });
      var at = Math.max(0, Math.min(Number(index) + i - 1, this.__list.length));
      this.__list.splice(at, 0, f);
    }
  }
  getByName(name) { return this.__list.find(function (f) { return f.name === name; }) || null; }
  getById(id) { return this.__list.find(function (f) { return f.id === id; }) || null; }
  removeByName(name) { this.__list = this.__list.filter(function (f) { return f.name !== name; }); }
  removeById(id) { this.__list = this.__list.filter(function (f) { return f.id !== id; }); }
  get length() { return this.__list.length; }
  toJSON() { return this.__list; }
}

class Collection {
  constructor(data) {
    data = data || {};
    for (var k in data) { if (k !== "fields") this[k] = data[k]; }
    if (!this.type) this.type = "base";
    this.fields = new FieldsList(data.fields instanceof FieldsList ? data.fields.toJSON() : data.fields);
    Object.defineProperty(this, "__existing", { value: !!data.__existing, writable: true, enumerable: false });
  }
  isAuth() { return this.type === "auth"; }
  isView() { return this.type === "view"; }
  isBase() { return this.type === "base"; }
  toJSON() {
    var out = {};
    for (var k in this) { if (k !== "fields" && k !== "__existing") out[k] = this[k]; }
    out.fields = this.fields.toJSON();
    return out;
  }
}

function __fieldClass(type) {
  return class { constructor(data) { Object.assign(this, data || {}); this.type = type; } };
}
// `new Field({type: "text", ...})`: the generic form the reference's generated migrations use.
class Field { constructor(data) { Object.assign(this, data || {}); } }
var TextField = __fieldClass("text"), NumberField = __fieldClass("number"), BoolField = __fieldClass("bool"),
  EmailField = __fieldClass("email"), URLField = __fieldClass("url"), EditorField = __fieldClass("editor"),
  DateField = __fieldClass("date"), AutodateField = __fieldClass("autodate"), SelectField = __fieldClass("select"),
  FileField = __fieldClass("file"), RelationField = __fieldClass("relation"), JSONField = __fieldClass("json"),
  PasswordField = __fieldClass("password"), GeoPointField = __fieldClass("geoPoint");

class DynamicModel {
  constructor(shape) { Object.assign(this, shape || {}); }
}

// ---- $app ---------------------------------------------------------------------------------
function __collectionRef(c) {
  if (c instanceof Collection) return c.id || c.name;
  return String(c);
}
function __pushWrite(write) {
  if (__pl.writes === null) throw new Error("$app writes are only allowed inside a handler, hook, cron or migration");
  __pl.writes.push(write);
}

function __saveNow(model) {
  if (model instanceof Collection) {
    __pushWrite({ op: "saveCollection", existing: model.__existing, collection: model.toJSON() });
    model.__existing = true;
    return;
  }
  if (!(model instanceof Record)) throw new Error("$app.save: unsupported model");
  if (!model.collection()) throw new Error("$app.save: the record has no collection");
  if (!model.id) { model.__data.id = __randomId(); }
  var data = {};
  if (model.isNew()) { data = Object.assign({}, model.__data); }
  else { for (var k in model.__changed) data[k] = model.__data[k]; }
  __pushWrite({ op: "save", collection: model.collection().id || model.collection().name, id: model.id, isNew: model.isNew(), data: data });
  model.__isNew = false;
  model.__changed = {};
}
function __deleteNow(model) {
  if (model instanceof Collection) { __pushWrite({ op: "deleteCollection", collection: model.id || model.name }); return; }
  if (!(model instanceof Record)) throw new Error("$app.delete: unsupported model");
  __pushWrite({ op: "delete", collection: model.collection().id || model.collection().name, id: model.id });
}
// Runs the model hooks `name` of the record's collection around `action` (the chain's end),
// for `$app.save`/`$app.delete` inside hooks. A chain that never calls `e.next()` writes nothing.
function __modelChain(name, model, action) {
  var fns = __matching(name, model.collection());
  if (!fns.length) return action();
  var e = { app: $app, record: model, collection: model.collection() };
  Object.defineProperty(model, "__inModelHook", { value: true, writable: true, configurable: true, enumerable: false });
  try {
    __runChain(fns, e, function () { model.__inModelHook = false; try { action(); } finally { model.__inModelHook = true; } });
  } finally {
    model.__inModelHook = false;
  }
}

var $app = {
  findCollectionByNameOrId: function (nameOrId) {
    var data = __native("findCollection", { collection: String(nameOrId) });
    data.__existing = true;
    return new Collection(data);
  },
  findRecordById: function (collection, id) {
    var out = __native("findRecordById", { collection: __collectionRef(collection), id: String(id) });
    return Record.__load(out.collection, out.record);
  },
  findRecordsByFilter: function (collection, filter, sort, limit, offset, params) {
    var out = __native("findRecordsByFilter", {
      collection: __collectionRef(collection), filter: filter || "", sort: sort || "",
      limit: limit || 0, offset: offset || 0, params: params || {}
    });
    return out.records.map(function (r) { return Record.__load(out.collection, r); });
  },
  findFirstRecordByFilter: function (collection, filter, params) {
    var out = __native("findRecordsByFilter", {
      collection: __collectionRef(collection), filter: filter || "", sort: "",
      limit: 1, offset: 0, params: params || {}
    });
    if (!out.records.length) throw new Error("sql: no rows in result set");
    return Record.__load(out.collection, out.records[0]);
  },
  findAllRecords: function (collection) { return $app.findRecordsByFilter(collection, "", "", 0, 0); },
  countRecords: function (collection, filter) { return $app.findRecordsByFilter(collection, filter || "", "", 0, 0).length; },
  save: function (model) {
    if (model instanceof Record && model.collection() && !model.__inModelHook) {
      // The model hooks (onRecordCreate/onRecordUpdate) run for every save, as on the
      // reference; the write happens at the end of their chain (e.next()).
      return __modelChain(model.isNew() ? "onRecordCreate" : "onRecordUpdate", model, function () { __saveNow(model); });
    }
    return __saveNow(model);
  },
  saveNoValidate: function (model) { return $app.save(model); },
  delete: function (model) {
    if (model instanceof Record && model.collection() && !model.__inModelHook) {
      return __modelChain("onRecordDelete", model, function () { __deleteNow(model); });
    }
    return __deleteNow(model);
  },
  runInTransaction: function (fn) { return fn($app); },
  newMailClient: function () {
    return { send: function (message) { __native("mail", message); } };
  },
  settings: function () { return __native("settings", null); },
  logger: function () { return __logger; },
  isDev: function () { return false; },
  dataDir: function () { return __native("dataDir", null); }
};
var __logFn = function (level) {
  return function (message) {
    var attrs = {};
    for (var i = 1; i + 1 < arguments.length; i += 2) attrs[String(arguments[i])] = arguments[i + 1];
    __native("log", { level: level, message: String(message), attrs: attrs });
  };
};
var __logger = { debug: __logFn("debug"), info: __logFn("info"), warn: __logFn("warn"), error: __logFn("error") };

class MailerMessage {
  constructor(data) { Object.assign(this, data || {}); }
}

// ---- utilities ----------------------------------------------------------------------------
var $security = {
  randomString: function (n) { return __native("randomString", { length: n, alphabet: "" }); },
  randomStringWithAlphabet: function (n, alphabet) { return __native("randomString", { length: n, alphabet: alphabet }); },
  pseudorandomString: function (n) { return $security.randomString(n); },
  createJWT: function (payload, secret, durationSec) { return __native("createJWT", { payload: payload, secret: secret, duration: durationSec }); },
  parseJWT: function (token, secret) { return __native("parseJWT", { token: token, secret: secret }); },
  sha256: function (text) { return __native("sha256", { text: String(text) }); },
  hs256: function (text, secret) { return __native("hs256", { text: String(text), secret: String(secret) }); },
  equal: function (a, b) { return String(a) === String(b); }
};
var $os = {
  getenv: function (name) { return __native("getenv", { name: String(name) }); }
};
var $http = {
  send: function (config) { return __native("httpSend", config || {}); }
};
function sleep(ms) { __native("sleep", { ms: Number(ms) || 0 }); }
function toString(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value) && value.every(function (b) { return typeof b === "number"; })) {
    return String.fromCharCode.apply(null, value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// ---- middlewares --------------------------------------------------------------------------
var $apis = {
  requireAuth: function () {
    var names = Array.prototype.slice.call(arguments);
    return { id: "pbRequireAuth", func: function (e) {
      if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
      if (names.length && names.indexOf(e.auth.collection().name) < 0 && names.indexOf(e.auth.collection().id) < 0) {
        throw new ForbiddenError("The authorized record is not allowed to perform this action.");
      }
      return e.next();
    } };
  },
  requireSuperuserAuth: function () {
    return { id: "pbRequireSuperuserAuth", func: function (e) {
      if (!e.auth || e.auth.collection().name !== "_superusers") throw new UnauthorizedError("The request requires superuser authorization token.");
      return e.next();
    } };
  },
  requireGuestOnly: function () {
    return { id: "pbRequireGuestOnly", func: function (e) {
      if (e.auth) throw new BadRequestError("The request can be accessed only by guests.");
      return e.next();
    } };
  },
  apiError: function (status, message, data) { return new ApiError(status, message, data); }
};

// ---- registration -------------------------------------------------------------------------
function routerAdd(method, path, handler) {
  var middlewares = Array.prototype.slice.call(arguments, 3);
  __pl.routes.push({ method: String(method).toUpperCase(), path: String(path), handler: handler, middlewares: middlewares });
}
function routerUse() {
  for (var i = 0; i < arguments.length; i++) __pl.use.push(arguments[i]);
}
function cronAdd(id, expression, fn) {
  cronRemove(id);
  __pl.crons.push({ id: String(id), expression: String(expression), fn: fn });
}
function cronRemove(id) {
  __pl.crons = __pl.crons.filter(function (c) { return c.id !== String(id); });
}
function __hook(name) {
  return function (fn) {
    var tags = Array.prototype.slice.call(arguments, 1).map(String);
    (__pl.hooks[name] = __pl.hooks[name] || []).push({ fn: fn, tags: tags });
  };
}
var onRecordCreateRequest = __hook("onRecordCreateRequest"), onRecordUpdateRequest = __hook("onRecordUpdateRequest"),
  onRecordDeleteRequest = __hook("onRecordDeleteRequest"), onRecordViewRequest = __hook("onRecordViewRequest"),
  onRecordsListRequest = __hook("onRecordsListRequest"), onRecordAuthRequest = __hook("onRecordAuthRequest"),
  onRecordCreate = __hook("onRecordCreate"), onRecordUpdate = __hook("onRecordUpdate"), onRecordDelete = __hook("onRecordDelete"),
  onRecordAfterCreateSuccess = __hook("onRecordAfterCreateSuccess"), onRecordAfterCreateError = __hook("onRecordAfterCreateError"),
  onRecordAfterUpdateSuccess = __hook("onRecordAfterUpdateSuccess"), onRecordAfterUpdateError = __hook("onRecordAfterUpdateError"),
  onRecordAfterDeleteSuccess = __hook("onRecordAfterDeleteSuccess"), onRecordAfterDeleteError = __hook("onRecordAfterDeleteError"),
  onMailerSend = __hook("onMailerSend"), onBootstrap = __hook("onBootstrap"), onServe = __hook("onServe"),
  onTerminate = __hook("onTerminate");

function __pl_summary() {
  var hooks = {};
  for (var name in __pl.hooks) hooks[name] = __pl.hooks[name].map(function (h) { return h.tags; });
  return JSON.stringify({
    routes: __pl.routes.map(function (r) { return { method: r.method, path: r.path }; }),
    hooks: hooks,
    crons: __pl.crons.map(function (c) { return { id: c.id, expression: c.expression }; })
  });
}

// ---- dispatch -----------------------------------------------------------------------------
function __runChain(fns, e, last) {
  var i = 0;
  e.next = function () {
    if (i < fns.length) {
      var f = fns[i++];
      var fn = typeof f === "function" ? f : f.func;
      return fn(e);
    }
    if (last && i === fns.length) { i++; return last(e); }
  };
  return e.next();
}

function __authRecord(auth) {
  return auth ? Record.__load(auth.collection, auth.record) : null;
}

function __requestPart(req) {
  var query = req.query || {};
  return {
    method: req.method,
    url: {
      path: req.path,
      rawQuery: req.rawQuery || "",
      query: function () { return { get: function (k) { var v = query[k]; return v === undefined ? "" : v; }, has: function (k) { return k in query; } }; }
    },
    pathValue: function (name) { var v = (req.params || {})[name]; return v === undefined ? "" : v; },
    header: { get: function (name) { var v = (req.headers || {})[String(name).toLowerCase().replace(/-/g, "_")]; return v === undefined ? "" : v; } },
    remoteAddr: req.ip || ""
  };
}

function __baseEvent(req) {
  var e = {
    request: __requestPart(req),
    auth: __authRecord(req.auth),
    __response: null,
    requestInfo: function () {
      return { query: req.query || {}, headers: req.headers || {}, body: req.body || {}, auth: e.auth, method: req.method, context: "default" };
    },
    hasSuperuserAuth: function () { return !!e.auth && e.auth.collection().name === "_superusers"; },
    isSuperuser: function () { return e.hasSuperuserAuth(); },
    realIP: function () { return req.ip || ""; },
    bindBody: function (target) {
      var body = req.body || {};
      var keys = Object.keys(target);
      for (var k in body) { if (keys.length === 0 || keys.indexOf(k) >= 0) target[k] = body[k]; }
      return target;
    },
    json: function (status, data) { e.__response = { status: status, kind: "json", body: JSON.stringify(data === undefined ? null : data) }; },
    string: function (status, text) { e.__response = { status: status, kind: "text", body: String(text) }; },
    html: function (status, text) { e.__response = { status: status, kind: "html", body: String(text) }; },
    noContent: function (status) { e.__response = { status: status, kind: "empty", body: "" }; },
    redirect: function (status, url) { e.__response = { status: status, kind: "redirect", body: String(url) }; },
    blob: function (status, contentType, bytes) { e.__response = { status: status, kind: "text", contentType: String(contentType), body: toString(bytes) }; }
  };
  return e;
}

function __invoke(body) {
  __pl.writes = [];
  try {
    var out = body();
    out.writes = __pl.writes;
    return JSON.stringify(out);
  } catch (err) {
    var failed = __errorOut(err);
    return JSON.stringify(failed);
  } finally {
    __pl.writes = null;
  }
}

// A custom route: its middlewares (routerUse first) then the handler.
function __pl_route(index, reqJson) {
  return __invoke(function () {
    var req = JSON.parse(reqJson);
    var route = __pl.routes[index];
    var e = __baseEvent(req);
    __runChain(__pl.use.concat(route.middlewares, [route.handler]), e, null);
    return { response: e.__response };
  });
}

function __matching(name, collection) {
  return (__pl.hooks[name] || []).filter(function (h) {
    return h.tags.length === 0 || h.tags.indexOf(collection.name) >= 0 || h.tags.indexOf(collection.id) >= 0;
  }).map(function (h) { return h.fn; });
}

// A record request hook chain (the request hook, then the model hook), ending in the
// default action, which marks the event to proceed with the write.
function __pl_record(name, modelName, evJson) {
  return __invoke(function () {
    var ev = JSON.parse(evJson);
    var collection = new Collection(ev.collection);
    var e = __baseEvent(ev.request || { method: "", path: "", query: {}, headers: {}, body: {} });
    e.collection = collection;
    e.app = $app;
    e.proceed = false;
    if (ev.record) {
      e.record = Record.__load(collection, ev.record);
      if (ev.isNew) { e.record.__isNew = true; for (var k in (ev.changed || {})) e.record.__changed[k] = true; }
    }
    if (ev.records) e.records = ev.records.map(function (r) { return Record.__load(collection, r); });
    if (ev.error) e.error = new Error(ev.error);
    var fns = __matching(name, collection);
    var models = modelName ? __matching(modelName, collection) : [];
    __runChain(fns.concat(models), e, function () { e.proceed = true; });
    var out = { proceed: e.proceed, response: e.__response };
    if (e.record) { out.record = e.record.__data; out.changed = Object.keys(e.record.__changed); }
    if (e.records) out.records = e.records.map(function (r) { return r.__data; });
    return out;
  });
}

// `onRecordAuthRequest`: the handlers may edit `e.record`, `e.token` and `e.meta`; the end
// of the chain is the default answer (`{record, token, meta}`).
function __pl_auth(evJson) {
  return __invoke(function () {
    var ev = JSON.parse(evJson);
    var collection = new Collection(ev.collection);
    var e = __baseEvent(ev.request || { method: "POST", path: "", query: {}, headers: {}, body: {} });
    e.collection = collection;
    e.app = $app;
    e.record = Record.__load(collection, ev.record);
    e.token = ev.token;
    e.meta = ev.meta === undefined ? null : ev.meta;
    e.authMethod = ev.authMethod;
    e.proceed = false;
    __runChain(__matching("onRecordAuthRequest", collection), e, function () { e.proceed = true; });
    return {
      proceed: e.proceed, response: e.__response,
      record: e.record ? e.record.__data : null, changed: e.record ? Object.keys(e.record.__changed) : [],
      token: e.token === null || e.token === undefined ? "" : String(e.token),
      meta: e.meta === undefined ? null : e.meta
    };
  });
}

// A global event (onBootstrap, onServe, onMailerSend).
function __pl_event(name, evJson) {
  return __invoke(function () {
    var ev = JSON.parse(evJson);
    var e = Object.assign({ app: $app }, ev);
    e.proceed = false;
    var fns = (__pl.hooks[name] || []).map(function (h) { return h.fn; });
    __runChain(fns, e, function () { e.proceed = true; });
    return { proceed: e.proceed, message: e.message };
  });
}

function __pl_cron(id) {
  return __invoke(function () {
    var job = __pl.crons.find(function (c) { return c.id === id; });
    if (job) job.fn();
    return {};
  });
}

// A migration file (`pb_migrations/*.js`): evaluates it (it calls `migrate(up, down)`) and
// runs `up` or `down` with `$app`; its writes are one commit.
var __pl_migration_fns = null;
function migrate(up, down) { __pl_migration_fns = { up: up, down: down }; }
function __pl_migration(source, direction) {
  return __invoke(function () {
    __pl_migration_fns = null;
    (0, eval)(source);
    var fns = __pl_migration_fns;
    if (!fns) throw new Error("the migration file does not call migrate(up, down)");
    var fn = direction === "down" ? fns.down : fns.up;
    if (typeof fn === "function") fn($app);
    return {};
  });
}

// `unmarshal(data, target)`: loads JSON data into a model as Go's json.Unmarshal does into a
// struct (objects merge key by key, everything else is replaced); used by the reference's
// generated migrations.
function __merge(target, data) {
  for (var k in data) {
    var v = data[k];
    if (v && typeof v === "object" && !Array.isArray(v) && target[k] && typeof target[k] === "object" && !Array.isArray(target[k])) {
      __merge(target[k], v);
    } else {
      target[k] = v;
    }
  }
}
function unmarshal(data, target) {
  if (target instanceof Collection) {
    var copy = Object.assign({}, data);
    if (copy.fields !== undefined) { target.fields = new FieldsList(copy.fields); delete copy.fields; }
    __merge(target, copy);
  } else if (target instanceof Record) {
    target.load(data);
  } else {
    __merge(target, data);
  }
  return target;
}
