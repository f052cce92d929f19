// pocketlog JSVM typings
// GENERATED FILE - rewritten by pocketlog when its first line differs; do not edit.
//
// The JavaScript API that pocketlog's hooks (pb_hooks/*.pb.js) and migrations
// (pb_migrations/*.js) can use: PocketBase's names and semantics for the part of its JSVM
// that pocketlog implements. Reference it from a file with
//   /// <reference path="../pb_data/types.d.ts" />

// ---------------------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------------------

/** A field definition: the JSON object of a collection field (`id`, `name`, `type`, options). */
interface FieldData {
  id?: string;
  name: string;
  type?: string;
  system?: boolean;
  hidden?: boolean;
  presentable?: boolean;
  required?: boolean;
  [option: string]: any;
}

/** A field of any type (`type` in `data`), as the reference's generated migrations write it. */
declare class Field { constructor(data?: FieldData); [key: string]: any }
declare class TextField { constructor(data?: FieldData); [key: string]: any }
declare class NumberField { constructor(data?: FieldData); [key: string]: any }
declare class BoolField { constructor(data?: FieldData); [key: string]: any }
declare class EmailField { constructor(data?: FieldData); [key: string]: any }
declare class URLField { constructor(data?: FieldData); [key: string]: any }
declare class EditorField { constructor(data?: FieldData); [key: string]: any }
declare class DateField { constructor(data?: FieldData); [key: string]: any }
declare class AutodateField { constructor(data?: FieldData); [key: string]: any }
declare class SelectField { constructor(data?: FieldData); [key: string]: any }
declare class FileField { constructor(data?: FieldData); [key: string]: any }
declare class RelationField { constructor(data?: FieldData); [key: string]: any }
declare class JSONField { constructor(data?: FieldData); [key: string]: any }
declare class PasswordField { constructor(data?: FieldData); [key: string]: any }
declare class GeoPointField { constructor(data?: FieldData); [key: string]: any }

/** The fields of a collection, in order. */
declare class FieldsList {
  constructor(list?: Array<FieldData>);
  /** Adds fields; a field with the name of an existing one replaces it in place. */
  add(...fields: Array<FieldData>): void;
  getByName(name: string): FieldData | null;
  getById(id: string): FieldData | null;
  removeByName(name: string): void;
  removeById(id: string): void;
  /** Inserts the fields at `index` (replacing any field of the same name or id). */
  addAt(index: number, ...fields: FieldData[]): void;
  readonly length: number;
  toJSON(): Array<FieldData>;
}

/** A collection definition (`base`, `auth` or `view`). */
declare class Collection {
  constructor(data?: { [key: string]: any });
  id: string;
  name: string;
  type: "base" | "auth" | "view";
  system: boolean;
  fields: FieldsList;
  indexes: Array<string>;
  listRule: string | null;
  viewRule: string | null;
  createRule: string | null;
  updateRule: string | null;
  deleteRule: string | null;
  viewQuery?: string;
  isAuth(): boolean;
  isView(): boolean;
  isBase(): boolean;
  [key: string]: any;
}

/** A record of a collection. */
declare class Record {
  constructor(collection: Collection | string, data?: { [key: string]: any });
  id: string;
  collection(): Collection;
  tableName(): string;
  isNew(): boolean;
  markAsNew(): void;
  markAsNotNew(): void;
  get(key: string): any;
  set(key: string, value: any): void;
  load(data: { [key: string]: any }): void;
  getString(key: string): string;
  getInt(key: string): number;
  getFloat(key: string): number;
  getBool(key: string): boolean;
  getStringSlice(key: string): Array<string>;
  getDateTime(key: string): string;
  email(): string;
  setEmail(email: string): void;
  verified(): boolean;
  setVerified(verified: boolean): void;
  setPassword(password: string): void;
  fieldsData(): { [key: string]: any };
  publicExport(): { [key: string]: any };
  toJSON(): { [key: string]: any };
}

/** A plain object shape for binding query results or request bodies. */
declare class DynamicModel {
  constructor(shape?: { [key: string]: any });
  [key: string]: any;
}

/** A mail message for `$app.newMailClient().send`. */
declare class MailerMessage {
  constructor(data?: {
    from?: { address: string; name?: string };
    to: Array<{ address: string; name?: string }> | string;
    subject?: string;
    html?: string;
    text?: string;
  });
  [key: string]: any;
}

/**
 * Loads JSON data into a model as Go's json.Unmarshal does into a struct: objects merge key by
 * key, everything else (a `fields` list included) is replaced.
 */
declare function unmarshal<T>(data: { [key: string]: any }, target: T): T;

// ---------------------------------------------------------------------------------------
// $app
// ---------------------------------------------------------------------------------------

interface Logger {
  debug(message: string, ...attrs: any[]): void;
  info(message: string, ...attrs: any[]): void;
  warn(message: string, ...attrs: any[]): void;
  error(message: string, ...attrs: any[]): void;
}

interface MailClient {
  send(message: MailerMessage): void;
}

/**
 * The app. Writes (`save`, `delete`) made in one handler, hook, cron job or migration are
 * committed together, as one commit of pocketlog's log (joined with the request's own write
 * in a request hook). Reads do not see the invocation's pending writes.
 */
interface App {
  findCollectionByNameOrId(nameOrId: string): Collection;
  findRecordById(collection: Collection | string, id: string): Record;
  findRecordsByFilter(
    collection: Collection | string,
    filter: string,
    sort?: string,
    limit?: number,
    offset?: number,
    params?: { [key: string]: any },
  ): Array<Record>;
  findFirstRecordByFilter(
    collection: Collection | string,
    filter: string,
    params?: { [key: string]: any },
  ): Record;
  findAllRecords(collection: Collection | string): Array<Record>;
  countRecords(collection: Collection | string, filter?: string): number;
  save(model: Record | Collection): void;
  saveNoValidate(model: Record | Collection): void;
  delete(model: Record | Collection): void;
  runInTransaction(fn: (txApp: App) => void): void;
  newMailClient(): MailClient;
  settings(): { [key: string]: any };
  logger(): Logger;
  isDev(): boolean;
  dataDir(): string;
}

declare var $app: App;

// ---------------------------------------------------------------------------------------
// utilities
// ---------------------------------------------------------------------------------------

declare namespace $security {
  function randomString(length: number): string;
  function randomStringWithAlphabet(length: number, alphabet: string): string;
  function pseudorandomString(length: number): string;
  function createJWT(payload: { [key: string]: any }, signingKey: string, secDuration: number): string;
  function parseJWT(token: string, verificationKey: string): { [key: string]: any };
  function sha256(text: string): string;
  function hs256(text: string, secret: string): string;
  function equal(a: string, b: string): boolean;
}

declare namespace $os {
  /** The value of an environment variable ("" when unset). */
  function getenv(name: string): string;
}

interface HttpSendConfig {
  url: string;
  method?: string;
  body?: string;
  headers?: { [key: string]: string };
  /** Seconds (bounded by pocketlog). */
  timeout?: number;
}

interface HttpSendResult {
  statusCode: number;
  headers: { [key: string]: Array<string> };
  body: Array<number>;
  raw: string;
  json: any;
}

declare namespace $http {
  /** Sends an HTTP request (bounded in time and response size). */
  function send(config: HttpSendConfig): HttpSendResult;
}

/** Blocks the handler for `milliseconds` (bounded by the handler's time limit). */
declare function sleep(milliseconds: number): void;

/** A value as text (byte arrays as their characters, objects as JSON). */
declare function toString(value: any): string;

// ---------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------

declare class ApiError extends Error {
  constructor(status?: number, message?: string, data?: { [key: string]: any });
  status: number;
  data: { [key: string]: any };
}
declare class BadRequestError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }
declare class NotFoundError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }
declare class ForbiddenError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }
declare class UnauthorizedError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }
declare class TooManyRequestsError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }
declare class InternalServerError extends ApiError { constructor(message?: string, data?: { [key: string]: any }) }

// ---------------------------------------------------------------------------------------
// routing
// ---------------------------------------------------------------------------------------

interface RequestInfo {
  query: { [key: string]: string };
  headers: { [key: string]: string };
  body: { [key: string]: any };
  auth: Record | null;
  method: string;
  context: string;
}

interface RequestEvent {
  request: {
    method: string;
    url: { path: string; rawQuery: string; query(): { get(key: string): string; has(key: string): boolean } };
    pathValue(name: string): string;
    header: { get(name: string): string };
    remoteAddr: string;
  };
  auth: Record | null;
  app: App;
  next(): void;
  requestInfo(): RequestInfo;
  hasSuperuserAuth(): boolean;
  isSuperuser(): boolean;
  realIP(): string;
  bindBody<T>(target: T): T;
  json(status: number, data: any): void;
  string(status: number, text: string): void;
  html(status: number, html: string): void;
  noContent(status: number): void;
  redirect(status: number, url: string): void;
  blob(status: number, contentType: string, bytes: Array<number> | string): void;
}

interface Middleware {
  id?: string;
  func: (e: RequestEvent) => void;
}

/**
 * Registers a custom route (`/hello/{name}`, `/files/{path...}`), served after the API's own
 * routes, with optional middlewares.
 */
declare function routerAdd(
  method: string,
  path: string,
  handler: (e: RequestEvent) => void,
  ...middlewares: Array<Middleware | ((e: RequestEvent) => void)>
): void;

/** Registers middlewares that run before every custom route. */
declare function routerUse(...middlewares: Array<Middleware | ((e: RequestEvent) => void)>): void;

declare namespace $apis {
  function requireAuth(...collections: string[]): Middleware;
  function requireSuperuserAuth(): Middleware;
  function requireGuestOnly(): Middleware;
  function apiError(status: number, message: string, data?: { [key: string]: any }): ApiError;
}

// ---------------------------------------------------------------------------------------
// cron
// ---------------------------------------------------------------------------------------

/** Registers (or replaces) the cron job `jobId` (5-field cron expression or a macro). */
declare function cronAdd(jobId: string, cronExpr: string, handler: () => void): void;

/** Removes the cron job `jobId`. */
declare function cronRemove(jobId: string): void;

// ---------------------------------------------------------------------------------------
// hooks
// ---------------------------------------------------------------------------------------

interface RecordRequestEvent extends RequestEvent {
  collection: Collection;
  record: Record;
}

interface RecordsListRequestEvent extends RequestEvent {
  collection: Collection;
  records: Array<Record>;
}

interface RecordEvent {
  app: App;
  collection: Collection;
  record: Record;
  next(): void;
}

interface RecordErrorEvent extends RecordEvent {
  error: Error;
}

interface AppEvent {
  app: App;
  next(): void;
  [key: string]: any;
}

declare function onRecordCreateRequest(handler: (e: RecordRequestEvent) => void, ...tags: string[]): void;
declare function onRecordUpdateRequest(handler: (e: RecordRequestEvent) => void, ...tags: string[]): void;
declare function onRecordDeleteRequest(handler: (e: RecordRequestEvent) => void, ...tags: string[]): void;
declare function onRecordViewRequest(handler: (e: RecordRequestEvent) => void, ...tags: string[]): void;
declare function onRecordsListRequest(handler: (e: RecordsListRequestEvent) => void, ...tags: string[]): void;
declare function onRecordAuthRequest(handler: (e: RecordRequestEvent) => void, ...tags: string[]): void;
declare function onRecordCreate(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordUpdate(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordDelete(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordAfterCreateSuccess(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordAfterCreateError(handler: (e: RecordErrorEvent) => void, ...tags: string[]): void;
declare function onRecordAfterUpdateSuccess(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordAfterUpdateError(handler: (e: RecordErrorEvent) => void, ...tags: string[]): void;
declare function onRecordAfterDeleteSuccess(handler: (e: RecordEvent) => void, ...tags: string[]): void;
declare function onRecordAfterDeleteError(handler: (e: RecordErrorEvent) => void, ...tags: string[]): void;
declare function onMailerSend(handler: (e: AppEvent) => void): void;
declare function onBootstrap(handler: (e: AppEvent) => void): void;
declare function onServe(handler: (e: AppEvent) => void): void;
declare function onTerminate(handler: (e: AppEvent) => void): void;

// ---------------------------------------------------------------------------------------
// migrations
// ---------------------------------------------------------------------------------------

/**
 * Defines a migration (pb_migrations only): `up` applies it, `down` reverts it. The writes
 * of one run of `up` or `down` and the update of the applied list are one commit.
 */
declare function migrate(up: (txApp: App) => void, down?: (txApp: App) => void): void;
