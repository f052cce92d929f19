//! The security settings enforced on every request: rate limits (`settings.rateLimits`), the
//! superuser IP allow-list (`settings.superuserIPs`) and the real client IP behind a trusted
//! proxy (`settings.trustedProxy`, see [`crate::client_ip`]).
//!
//! Rule model (measured on PocketBase v0.40.6, black box):
//! 1. Labels: `coll:tag` / `*:tag` (collection actions: `list`, `view`, `create`, `update`,
//!    `delete`, `file`, `listAuthMethods`, `authRefresh`, `authWithPassword`, `authWithOAuth2`,
//!    `authWithOTP`, `requestOTP`, `request/confirmPasswordReset`, `request/confirmVerification`,
//!    `request/confirmEmailChange`; the three `authWith*` also answer to `auth`), `METHOD /path`,
//!    `/path`, and prefixes ending in `/` (`/api/` matches `/api` and everything below).
//! 2. The first match wins in this order: exact collection tag (`users:authWithPassword`, then
//!    `users:auth`), wildcard tag (`*:authWithPassword`, then `*:auth`), `METHOD` + exact path,
//!    `METHOD` + longest prefix, exact path, longest prefix. Only rules whose audience fits are
//!    considered (`""` all, `@guest`, `@auth`).
//! 3. Counters are per (scope, rule, real IP). The scope of a collection route is its
//!    `collection:action`, so `users` lists and `posts` lists count apart even under `/api/`;
//!    other routes share the rule's counter (`/api/health` and `/api/settings` under `/api/`).
//! 4. A fixed window of `duration` whole seconds opened by the first request after the previous
//!    window ended; at most `maxRequests` requests pass per window, the others get
//!    429 `Too Many Requests.`. Superusers and `excludedIPs` are exempt; OPTIONS preflights are
//!    answered before this layer.
//! 5. A superuser token used from an address outside a non-empty `superuserIPs` list gets
//!    403 `You are not allowed to perform this request.` on every route, and a successful
//!    `_superusers` auth (password, OTP, OAuth2) from such an address is turned into that 403.
//!    (This lives in the layer, not in `access::authenticate`: the reference refuses before any
//!    handler runs, even `/api/health`, which an `Option<Auth>` cannot express.)
//! 6. `/api/batch` sub-requests are limited as the routes they stand for
//!    ([`check_batch_request`], called by the batch handler), keyed by the caller's real IP.
//!
//! The limiter ([`Limiter`]): each (scope, rule, IP) is hashed with a per-process random
//! SipHash key to a `u64`; 64 shards, each behind its own mutex, hold two generations of
//! `u64 → (window start, count)` maps. A lookup checks the current generation, then the
//! previous one (promoting the entry); when the current generation reaches its capacity it
//! becomes the previous one and the old previous one is dropped. So every request costs one
//! hash, one lock and at most two map probes and one insert (O(1)), and memory is bounded by
//! [`Limiter::capacity`] entries however many distinct IPs flood in. An evicted entry only
//! ever forgets a counter (the client gets a fresh window), it never blocks anyone.
//!
//! Measured (`tests/ratelimit_bench.rs`, release, shared 2-core machine): rule lookup + key +
//! count cost 162 ns per request with a few clients, 314 ns spread over 100,000 clients; the
//! limiter holds 3.28 MB for 100,000 distinct IPs (32.8 B/IP, default capacity 262,144), and a
//! flood of 1,000,000 IPs into a 65,536-entry limiter keeps it at 2.4 MB.

use crate::access;
use crate::client_ip::{self, ClientIp, IpList, TrustedProxy};
use crate::error::ApiError;
use crate::model::SUPERUSERS_ID;
use crate::routes::{COLLECTIONS_PREFIX, FILES_PREFIX};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Default bound on the limiter's entries (all shards, both generations).
pub const DEFAULT_CAPACITY: usize = 1 << 18;
/// Number of limiter shards (a power of two).
const SHARDS: usize = 64;
/// The 429 message (`docs/wire/errors.md`).
pub const TOO_MANY_REQUESTS: &str = "Too Many Requests.";
/// The 403 message for a superuser outside `superuserIPs`.
pub const NOT_ALLOWED: &str = "You are not allowed to perform this request.";

/// Who a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// `""`: everyone.
    All,
    /// `@guest`.
    Guest,
    /// `@auth` (authenticated records, superusers are exempt anyway).
    Auth,
}

impl Audience {
    fn parse(text: &str) -> Option<Audience> {
        match text {
            "" => Some(Audience::All),
            "@guest" => Some(Audience::Guest),
            "@auth" => Some(Audience::Auth),
            _ => None,
        }
    }

    fn fits(self, authenticated: bool) -> bool {
        match self {
            Audience::All => true,
            Audience::Guest => !authenticated,
            Audience::Auth => authenticated,
        }
    }
}

/// One usable rule of `settings.rateLimits.rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The label as configured.
    pub label: String,
    /// The audience as configured.
    pub audience: String,
    parsed_audience: Audience,
    /// Window length in seconds (>= 1).
    pub duration: u64,
    /// Requests allowed per window (>= 1).
    pub max_requests: u64,
    kind: LabelKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelKind {
    /// `coll:tag` or `*:tag` (stored whole).
    Tag,
    /// `METHOD /path` or `/path`; `prefix` when it ends with `/`.
    Path {
        method: Option<String>,
        path: String,
        prefix: bool,
    },
    /// A plain word (used by hooks in PocketBase); never matched by a request here.
    Other,
}

fn label_kind(label: &str) -> LabelKind {
    if let Some((method, path)) = label.split_once(' ') {
        if path.starts_with('/') {
            return LabelKind::Path {
                method: Some(method.to_ascii_uppercase()),
                path: path.to_string(),
                prefix: path.ends_with('/'),
            };
        }
        return LabelKind::Other;
    }
    if label.starts_with('/') {
        return LabelKind::Path {
            method: None,
            path: label.to_string(),
            prefix: label.ends_with('/'),
        };
    }
    if label.contains(':') {
        return LabelKind::Tag;
    }
    LabelKind::Other
}

/// The security settings compiled once per settings version.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `rateLimits.enabled`.
    pub enabled: bool,
    /// Usable rules (malformed ones, which validation refuses, are skipped).
    pub rules: Vec<Rule>,
    /// `rateLimits.excludedIPs`.
    pub excluded: IpList,
    /// `superuserIPs`.
    pub superuser_ips: IpList,
    /// `trustedProxy`.
    pub proxy: TrustedProxy,
}

impl Config {
    /// Compiles the settings JSON.
    pub fn from_settings(settings: &Value) -> Config {
        let limits = settings.get("rateLimits");
        let rules = limits
            .and_then(|l| l.get("rules"))
            .and_then(Value::as_array)
            .map(|rules| rules.iter().filter_map(compile_rule).collect())
            .unwrap_or_default();
        Config {
            enabled: limits
                .and_then(|l| l.get("enabled"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rules,
            excluded: IpList::from_json(limits.and_then(|l| l.get("excludedIPs"))),
            superuser_ips: IpList::from_json(settings.get("superuserIPs")),
            proxy: TrustedProxy::from_settings(settings),
        }
    }

    /// The rule for a request (see the module docs for the order), if any.
    pub fn find_rule(
        &self,
        action: Option<&CollectionAction>,
        method: &str,
        path: &str,
        authenticated: bool,
    ) -> Option<&Rule> {
        let fits = |rule: &&Rule| rule.parsed_audience.fits(authenticated);
        if let Some(action) = action {
            for tag in action.tags() {
                if let Some(rule) = self
                    .rules
                    .iter()
                    .filter(fits)
                    .find(|r| r.kind == LabelKind::Tag && r.label == tag)
                {
                    return Some(rule);
                }
            }
        }
        let path_rule = |with_method: bool, prefix: bool| -> Option<&Rule> {
            self.rules
                .iter()
                .filter(fits)
                .filter_map(|rule| match &rule.kind {
                    LabelKind::Path {
                        method: rule_method,
                        path: rule_path,
                        prefix: rule_prefix,
                    } if *rule_prefix == prefix
                        && rule_method.is_some() == with_method
                        && rule_method.as_deref().is_none_or(|m| m == method) =>
                    {
                        let hit = if prefix {
                            path.starts_with(rule_path.as_str())
                                || rule_path.strip_suffix('/') == Some(path)
                        } else {
                            rule_path == path
                        };
                        hit.then_some((rule_path.len(), rule))
                    }
                    _ => None,
                })
                // The longest prefix is the most specific; ties keep the first configured.
                .fold(
                    None,
                    |best: Option<(usize, &Rule)>, (len, rule)| match best {
                        Some((best_len, _)) if best_len >= len => best,
                        _ => Some((len, rule)),
                    },
                )
                .map(|(_, rule)| rule)
        };
        path_rule(true, false)
            .or_else(|| path_rule(true, true))
            .or_else(|| path_rule(false, false))
            .or_else(|| path_rule(false, true))
    }
}

fn compile_rule(value: &Value) -> Option<Rule> {
    let label = value.get("label")?.as_str()?.to_string();
    let audience = value
        .get("audience")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let duration = value.get("duration")?.as_u64().filter(|d| *d > 0)?;
    let max_requests = value.get("maxRequests")?.as_u64().filter(|m| *m > 0)?;
    Some(Rule {
        kind: label_kind(&label),
        parsed_audience: Audience::parse(&audience)?,
        label,
        audience,
        duration,
        max_requests,
    })
}

/// A collection route: the collection's name and the action's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionAction {
    /// Collection name (resolved from an id or name in the path).
    pub collection: String,
    /// Collection id.
    pub collection_id: String,
    /// The action tag (`list`, `authWithPassword`, ...).
    pub action: &'static str,
}

impl CollectionAction {
    /// True for the three `authWith*` actions (which also answer to the `auth` tag).
    pub fn is_auth(&self) -> bool {
        matches!(
            self.action,
            "authWithPassword" | "authWithOAuth2" | "authWithOTP"
        )
    }

    /// The tag labels to look for, most specific first.
    fn tags(&self) -> Vec<String> {
        let mut tags = vec![format!("{}:{}", self.collection, self.action)];
        if self.is_auth() {
            tags.push(format!("{}:auth", self.collection));
        }
        tags.push(format!("*:{}", self.action));
        if self.is_auth() {
            tags.push("*:auth".to_string());
        }
        tags
    }

    /// The counter scope (`collection:action`).
    fn scope(&self) -> String {
        format!("{}:{}", self.collection, self.action)
    }
}

/// The collection action of a request path, when it is one (unknown collections are not).
pub fn collection_action(
    state: &AppState,
    method: &Method,
    path: &str,
) -> Option<CollectionAction> {
    let (collection, action) = if let Some(rest) = path.strip_prefix(COLLECTIONS_PREFIX) {
        let segments: Vec<&str> = rest.split('/').collect();
        let action = match (method.as_str(), segments.as_slice()) {
            ("GET" | "HEAD", [_, "records"]) => "list",
            ("POST", [_, "records"]) => "create",
            ("GET" | "HEAD", [_, "records", id]) if !id.is_empty() => "view",
            ("PATCH", [_, "records", id]) if !id.is_empty() => "update",
            ("DELETE", [_, "records", id]) if !id.is_empty() => "delete",
            ("GET" | "HEAD", [_, "auth-methods"]) => "listAuthMethods",
            ("POST", [_, "auth-refresh"]) => "authRefresh",
            ("POST", [_, "auth-with-password"]) => "authWithPassword",
            ("POST", [_, "auth-with-oauth2"]) => "authWithOAuth2",
            ("POST", [_, "auth-with-otp"]) => "authWithOTP",
            ("POST", [_, "request-otp"]) => "requestOTP",
            ("POST", [_, "request-password-reset"]) => "requestPasswordReset",
            ("POST", [_, "confirm-password-reset"]) => "confirmPasswordReset",
            ("POST", [_, "request-verification"]) => "requestVerification",
            ("POST", [_, "confirm-verification"]) => "confirmVerification",
            ("POST", [_, "request-email-change"]) => "requestEmailChange",
            ("POST", [_, "confirm-email-change"]) => "confirmEmailChange",
            _ => return None,
        };
        (segments[0], action)
    } else if let Some(rest) = path.strip_prefix(FILES_PREFIX) {
        let segments: Vec<&str> = rest.split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("GET" | "HEAD", [collection, record, file])
                if !record.is_empty() && !file.is_empty() =>
            {
                (*collection, "file")
            }
            _ => return None,
        }
    } else {
        return None;
    };
    if collection.is_empty() {
        return None;
    }
    let schema = state.schema();
    let found = schema.find(collection)?;
    Some(CollectionAction {
        collection: found.name.clone(),
        collection_id: found.id.clone(),
        action,
    })
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Seconds since the limiter's epoch when the window opened.
    start: u64,
    /// Requests seen in the window (saturating).
    count: u64,
}

/// A `Hasher` for keys that already are uniform 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Map = HashMap<u64, Window, BuildHasherDefault<PreHashed>>;

#[derive(Default)]
struct Shard {
    current: Map,
    previous: Map,
}

/// Fixed-window counters in a bounded, sharded, two-generation map (see the module docs).
pub struct Limiter {
    shards: Vec<Mutex<Shard>>,
    generation_capacity: usize,
    hasher: RandomState,
    epoch: Instant,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(DEFAULT_CAPACITY)
    }
}

impl Limiter {
    /// A limiter holding at most about `capacity` entries (rounded to the shard count).
    pub fn new(capacity: usize) -> Limiter {
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            generation_capacity: (capacity / (2 * SHARDS)).max(1),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// The most entries held at once.
    pub fn capacity(&self) -> usize {
        self.generation_capacity * 2 * SHARDS
    }

    /// Entries held now (both generations).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.current.len() + shard.previous.len()
            })
            .sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of (scope, rule, ip).
    pub fn key(&self, scope: &str, rule: &Rule, ip: &str) -> u64 {
        self.hasher
            .hash_one((scope, rule.label.as_str(), rule.audience.as_str(), ip))
    }

    /// Counts one request for `key` now; false when it exceeds `max_requests` per `duration`.
    pub fn check(&self, key: u64, duration: u64, max_requests: u64) -> bool {
        self.check_at(key, self.epoch.elapsed().as_secs(), duration, max_requests)
    }

    /// [`Limiter::check`] at an explicit time (seconds since the limiter's epoch).
    pub fn check_at(&self, key: u64, now: u64, duration: u64, max_requests: u64) -> bool {
        // Top bits pick the shard; the map uses the whole key.
        let index = (key >> 58) as usize % SHARDS;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let shard = &mut *shard;
        let window = match shard.current.get_mut(&key) {
            Some(window) => window,
            None => {
                let carried = shard.previous.remove(&key);
                if shard.current.len() >= self.generation_capacity {
                    shard.previous = std::mem::take(&mut shard.current);
                }
                shard
                    .current
                    .entry(key)
                    .or_insert(carried.unwrap_or(Window {
                        start: now,
                        count: 0,
                    }))
            }
        };
        if now.saturating_sub(window.start) >= duration {
            window.start = now;
            window.count = 0;
        }
        window.count = window.count.saturating_add(1);
        window.count <= max_requests
    }
}

/// The security state kept in [`AppState`]: the limiter and the compiled settings.
#[derive(Debug, Default)]
pub struct Security {
    /// The rate limiter.
    pub limiter: Limiter,
    compiled: RwLock<Option<(Arc<Value>, Arc<Config>)>>,
}

impl Security {
    /// The compiled form of `settings` (recompiled only when the settings were replaced).
    pub fn config(&self, settings: &Arc<Value>) -> Arc<Config> {
        {
            let cached = self
                .compiled
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((source, config)) = cached.as_ref() {
                if Arc::ptr_eq(source, settings) {
                    return Arc::clone(config);
                }
            }
        }
        let config = Arc::new(Config::from_settings(settings));
        *self
            .compiled
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Arc::clone(settings), Arc::clone(&config)));
        config
    }
}

/// The caller's IP as configured (`trustedProxy`) for a request's headers and extensions.
pub fn client_ip_of(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> ClientIp {
    let config = state.security.config(&state.settings());
    client_ip::resolve(&config.proxy, headers, client_ip::peer(extensions))
}

/// True when a superuser may act from `ip` (an empty list allows every address).
pub fn superuser_ip_allowed(config: &Config, ip: &str) -> bool {
    config.superuser_ips.is_empty() || config.superuser_ips.contains(ip)
}

fn is_superuser_claim(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(crate::auth::token::token_from_authorization)
        .and_then(crate::auth::token::decode_unverified)
        .is_some_and(|claims| claims.collection_id == SUPERUSERS_ID)
}

tokio::task_local! {
    /// The real client IP of the request being handled, while rate limits are on (read by
    /// [`check_batch_request`]).
    static REQUEST_IP: String;
}

/// Rate-limits one `/api/batch` sub-request as the route it stands for (`coll:create`,
/// `coll:update`, `coll:delete`, `METHOD /path`, ...), keyed by the batch caller's real IP, as
/// PocketBase does. A `PUT` (upsert) counts as `update` when its body names an `id`, else as
/// `create`. No-op outside the middleware or when limits are off; superusers are exempt.
pub fn check_batch_request(
    state: &AppState,
    auth: Option<&access::Auth>,
    method: &str,
    url: &str,
    collection: &crate::model::Collection,
    body: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    let Ok(ip) = REQUEST_IP.try_with(Clone::clone) else {
        return Ok(());
    };
    let config = state.security.config(&state.settings());
    if !config.enabled || access::is_superuser(auth) || config.excluded.contains(&ip) {
        return Ok(());
    }
    let has_id = body
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty());
    let action = match method {
        "POST" => "create",
        "PATCH" => "update",
        "DELETE" => "delete",
        "PUT" if has_id => "update",
        "PUT" => "create",
        _ => return Ok(()),
    };
    let action = CollectionAction {
        collection: collection.name.clone(),
        collection_id: collection.id.clone(),
        action,
    };
    let path = url.split(['?', '#']).next().unwrap_or("");
    if let Some(rule) = config.find_rule(Some(&action), method, path, auth.is_some()) {
        let key = state.security.limiter.key(&action.scope(), rule, &ip);
        if !state
            .security
            .limiter
            .check(key, rule.duration, rule.max_requests)
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                TOO_MANY_REQUESTS,
            ));
        }
    }
    Ok(())
}

/// The middleware: superuser IP allow-list, then rate limits, then the handler.
pub async fn middleware(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let settings = state.settings();
    let config = state.security.config(&settings);
    let limits_on = config.enabled && !config.rules.is_empty();
    if !limits_on && config.superuser_ips.is_empty() {
        return next.run(request).await;
    }
    let ip = client_ip::resolve(
        &config.proxy,
        request.headers(),
        client_ip::peer(request.extensions()),
    );
    let has_token = request.headers().contains_key("authorization");
    // Verify the token only when its outcome matters: the audience of a rate limit, or a
    // superuser claim under an IP allow-list (a forged claim then stays a guest).
    let auth = if has_token
        && (limits_on
            || (!config.superuser_ips.is_empty() && is_superuser_claim(request.headers())))
    {
        access::authenticate(&state, request.headers()).await
    } else {
        None
    };
    let superuser = auth.as_ref().is_some_and(access::Auth::is_superuser);
    if superuser && !superuser_ip_allowed(&config, &ip.real) {
        tracing::info!(ip = %ip.real, "superuser request refused: address not in superuserIPs");
        return ApiError::new(StatusCode::FORBIDDEN, NOT_ALLOWED).into_response();
    }
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let action = collection_action(&state, &method, &path);
    if limits_on && !superuser && !config.excluded.contains(&ip.real) {
        if let Some(rule) =
            config.find_rule(action.as_ref(), method.as_str(), &path, auth.is_some())
        {
            let scope = action
                .as_ref()
                .map(CollectionAction::scope)
                .unwrap_or_default();
            let key = state.security.limiter.key(&scope, rule, &ip.real);
            if !state
                .security
                .limiter
                .check(key, rule.duration, rule.max_requests)
            {
                tracing::debug!(ip = %ip.real, label = %rule.label, "rate limit exceeded");
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS)
                    .into_response();
            }
        }
    }
    let response = if limits_on {
        REQUEST_IP.scope(ip.real.clone(), next.run(request)).await
    } else {
        next.run(request).await
    };
    let superuser_login = action
        .as_ref()
        .is_some_and(|a| a.collection_id == SUPERUSERS_ID && a.is_auth());
    if superuser_login && response.status().is_success() && !superuser_ip_allowed(&config, &ip.real)
    {
        tracing::info!(ip = %ip.real, "superuser sign-in refused: address not in superuserIPs");
        return ApiError::new(StatusCode::FORBIDDEN, NOT_ALLOWED).into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(rules: Value) -> Config {
        Config::from_settings(&json!({"rateLimits": {"enabled": true, "rules": rules}}))
    }

    fn action(collection: &str, tag: &'static str) -> CollectionAction {
        CollectionAction {
            collection: collection.into(),
            collection_id: format!("id_{collection}"),
            action: tag,
        }
    }

    fn rule(r: Option<&Rule>) -> Option<(&str, &str)> {
        r.map(|r| (r.label.as_str(), r.audience.as_str()))
    }

    #[test]
    fn order_of_labels() {
        let c = config(json!([
            {"label": "/api/", "duration": 1, "maxRequests": 1},
            {"label": "/api/collections/", "duration": 1, "maxRequests": 1},
            {"label": "POST /api/", "duration": 1, "maxRequests": 1},
            {"label": "/api/collections/users/records", "duration": 1, "maxRequests": 1},
            {"label": "*:auth", "duration": 1, "maxRequests": 1},
            {"label": "users:auth", "duration": 1, "maxRequests": 1},
            {"label": "*:authWithPassword", "duration": 1, "maxRequests": 1},
            {"label": "*:create", "duration": 1, "maxRequests": 1}
        ]));
        let pw = action("users", "authWithPassword");
        let path = "/api/collections/users/auth-with-password";
        assert_eq!(
            rule(c.find_rule(Some(&pw), "POST", path, false)),
            Some(("users:auth", ""))
        );
        let pw = action("posts", "authWithPassword");
        let path = "/api/collections/posts/auth-with-password";
        assert_eq!(
            rule(c.find_rule(Some(&pw), "POST", path, false)),
            Some(("*:authWithPassword", ""))
        );
        let otp = action("posts", "authWithOTP");
        assert_eq!(
            rule(c.find_rule(Some(&otp), "POST", path, false)),
            Some(("*:auth", ""))
        );
        let list = action("users", "list");
        let path = "/api/collections/users/records";
        assert_eq!(
            rule(c.find_rule(Some(&list), "GET", path, false)),
            Some((path, ""))
        );
        let list = action("posts", "list");
        assert_eq!(
            rule(c.find_rule(Some(&list), "GET", "/api/collections/posts/records", false)),
            Some(("/api/collections/", ""))
        );
        assert_eq!(
            rule(c.find_rule(None, "POST", "/api/batch", false)),
            Some(("POST /api/", ""))
        );
        assert_eq!(
            rule(c.find_rule(None, "GET", "/api", false)),
            Some(("/api/", ""))
        );
        assert_eq!(rule(c.find_rule(None, "GET", "/apix", false)), None);
        assert_eq!(rule(c.find_rule(None, "GET", "/_/", false)), None);
    }

    #[test]
    fn audiences_filter_rules() {
        let c = config(json!([
            {"label": "/api/health", "audience": "@auth", "duration": 1, "maxRequests": 1},
            {"label": "/api/", "audience": "@guest", "duration": 1, "maxRequests": 1}
        ]));
        assert_eq!(
            rule(c.find_rule(None, "GET", "/api/health", true)),
            Some(("/api/health", "@auth"))
        );
        assert_eq!(
            rule(c.find_rule(None, "GET", "/api/health", false)),
            Some(("/api/", "@guest"))
        );
        assert_eq!(rule(c.find_rule(None, "GET", "/api/x", true)), None);
    }

    #[test]
    fn fixed_window_of_whole_seconds() {
        let limiter = Limiter::new(1024);
        let key = 42;
        assert!(limiter.check_at(key, 10, 3, 2));
        assert!(limiter.check_at(key, 11, 3, 2));
        assert!(!limiter.check_at(key, 12, 3, 2));
        assert!(limiter.check_at(key, 13, 3, 2));
        assert!(limiter.check_at(key, 13, 3, 2));
        assert!(!limiter.check_at(key, 15, 3, 2));
        assert!(limiter.check_at(key, 16, 3, 2));
    }

    #[test]
    fn bounded_under_a_flood() {
        let limiter = Limiter::new(4096);
        for key in 0..100_000u64 {
            let key = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(limiter.check_at(key, 0, 60, 1));
            assert!(limiter.len() <= limiter.capacity());
        }
        assert!(limiter.len() > limiter.capacity() / 4);
    }

    #[test]
    fn a_recent_key_survives_one_rotation() {
        let limiter = Limiter::new(2 * SHARDS * 4);
        let key = 7u64 << 58;
        assert!(limiter.check_at(key, 0, 60, 1));
        // Same shard, enough keys to rotate the generation once.
        for i in 1..=4u64 {
            limiter.check_at((7u64 << 58) | i, 0, 60, 1);
        }
        assert!(
            !limiter.check_at(key, 0, 60, 1),
            "the counter was promoted, not lost"
        );
    }
}
