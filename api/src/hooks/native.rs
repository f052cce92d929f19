//! The native side of the JSVM: the one function `__pl_native(op, json) -> json` that the
//! prelude's `$app`, `$security`, `$os`, `$http`, `sleep` and the mail client call.
//!
//! Invariants:
//! 1. Reads go through the records service as a superuser (hooks bypass API rules, as in
//!    PocketBase); nothing here writes: writes are collected by the prelude and committed by
//!    `hooks::writes`.
//! 2. Every blocking operation is bounded: `sleep` by the invocation's remaining time,
//!    `$http.send` by [`HTTP_MAX_TIMEOUT`] and [`HTTP_MAX_BODY_BYTES`].
//! 3. Errors come back as `{"err": message}` (a JS `Error`) or with a `status` (an
//!    `ApiError`); a native op never panics into the VM.

use super::vm::Deadline;
use crate::access::Auth;
use crate::model::SUPERUSERS_ID;
use crate::state::AppState;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The most records one `findRecordsByFilter` returns (limit 0 means this many).
pub const MAX_FIND_RECORDS: i64 = 1000;
/// The longest `$http.send` waits.
pub const HTTP_MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `$http.send` response body read.
pub const HTTP_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The longest random string `$security.randomString` makes.
const MAX_RANDOM_LENGTH: usize = 4096;

/// The native functions of one VM.
#[derive(Clone)]
pub struct Native {
    state: Weak<AppState>,
    runtime: Option<tokio::runtime::Handle>,
    deadline: Deadline,
}

type OpResult = Result<Value, (Option<u16>, String)>;

fn js_error(message: impl std::fmt::Display) -> (Option<u16>, String) {
    (None, message.to_string())
}

impl Native {
    /// Natives over `state`, running async services on `runtime`.
    pub fn new(state: Weak<AppState>, runtime: Option<tokio::runtime::Handle>) -> Native {
        Native {
            state,
            runtime,
            deadline: Deadline::default(),
        }
    }

    /// The same natives bound to a VM's deadline.
    pub fn with_deadline(&self, deadline: Deadline) -> Native {
        Native {
            deadline,
            ..self.clone()
        }
    }

    /// Runs one op; the JSON answer for the prelude.
    pub fn call(&self, op: &str, arg: &str) -> String {
        let arg: Value = serde_json::from_str(arg).unwrap_or(Value::Null);
        let out = match self.run(op, &arg) {
            Ok(value) => json!({ "ok": value }),
            Err((Some(status), message)) => json!({ "err": message, "status": status }),
            Err((None, message)) => json!({ "err": message }),
        };
        out.to_string()
    }

    fn state(&self) -> Result<Arc<AppState>, (Option<u16>, String)> {
        self.state
            .upgrade()
            .ok_or_else(|| js_error("the app is shutting down"))
    }

    fn block_on<F: std::future::Future>(
        &self,
        future: F,
    ) -> Result<F::Output, (Option<u16>, String)> {
        match &self.runtime {
            Some(handle) => Ok(handle.block_on(future)),
            None => Err(js_error("no async runtime for this operation")),
        }
    }

    fn run(&self, op: &str, arg: &Value) -> OpResult {
        let text = |key: &str| {
            arg.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match op {
            "findCollection" => {
                let state = self.state()?;
                let schema = state.schema();
                let collection = schema
                    .find(&text("collection"))
                    .ok_or_else(|| (Some(404), "Missing collection context.".to_string()))?;
                Ok(collection.to_json())
            }
            "findRecordById" => self.find_by_id(&text("collection"), &text("id")),
            "findRecordsByFilter" => self.find_by_filter(arg),
            "settings" => {
                let state = self.state()?;
                Ok(crate::settings::redact((*state.settings()).clone()))
            }
            "dataDir" => Ok(json!(self.state()?.engine.dir().display().to_string())),
            "log" => {
                let level = text("level");
                let message = text("message");
                let attrs = arg.get("attrs").cloned().unwrap_or(Value::Null);
                match level.as_str() {
                    "error" => tracing::error!(target: "hooks", %attrs, "{message}"),
                    "warn" => tracing::warn!(target: "hooks", %attrs, "{message}"),
                    "debug" => tracing::debug!(target: "hooks", %attrs, "{message}"),
                    _ => tracing::info!(target: "hooks", %attrs, "{message}"),
                }
                Ok(Value::Null)
            }
            "randomString" => {
                let length = arg.get("length").and_then(Value::as_u64).unwrap_or(0) as usize;
                let alphabet = text("alphabet");
                let alphabet = if alphabet.is_empty() {
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_string()
                } else {
                    alphabet
                };
                Ok(json!(crate::auth::token::random_string(
                    length.min(MAX_RANDOM_LENGTH),
                    alphabet.as_bytes()
                )))
            }
            "sha256" => Ok(json!(hex(&Sha256::digest(text("text").as_bytes())))),
            "hs256" => Ok(json!(hex(&hmac_sha256(
                &text("secret"),
                text("text").as_bytes()
            )))),
            "createJWT" => {
                let mut payload = match arg.get("payload") {
                    Some(Value::Object(map)) => map.clone(),
                    _ => Map::new(),
                };
                let duration = arg.get("duration").and_then(Value::as_i64).unwrap_or(0);
                if duration > 0 {
                    payload.insert(
                        "exp".into(),
                        json!(chrono::Utc::now().timestamp() + duration),
                    );
                }
                Ok(json!(create_jwt(&Value::Object(payload), &text("secret"))))
            }
            "parseJWT" => parse_jwt(&text("token"), &text("secret")),
            "getenv" => Ok(json!(std::env::var(text("name")).unwrap_or_default())),
            "sleep" => {
                let ms = arg
                    .get("ms")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(0.0);
                let mut wait = Duration::from_millis(ms as u64);
                if let Some(left) = self.deadline.remaining() {
                    wait = wait.min(left);
                }
                std::thread::sleep(wait);
                Ok(Value::Null)
            }
            "mail" => self.send_mail(arg),
            "httpSend" => super::http::send(arg, self.deadline.remaining()),
            other => Err(js_error(format!("unknown native op {other}"))),
        }
    }

    fn find_by_id(&self, collection: &str, id: &str) -> OpResult {
        let state = self.state()?;
        let schema = state.schema();
        let collection = crate::records::find_collection(&schema, collection).map_err(api_err)?;
        let auth = system_auth(&state).map_err(api_err)?;
        let data = crate::access::RequestData::default();
        let record = self
            .block_on(crate::records::view(
                &state,
                &schema,
                &collection,
                Some(&auth),
                id.to_string(),
                &data,
            ))?
            .map_err(api_err)?;
        Ok(json!({ "collection": collection.to_json(), "record": record }))
    }

    fn find_by_filter(&self, arg: &Value) -> OpResult {
        let state = self.state()?;
        let schema = state.schema();
        let name = arg.get("collection").and_then(Value::as_str).unwrap_or("");
        let collection = crate::records::find_collection(&schema, name).map_err(api_err)?;
        let auth = system_auth(&state).map_err(api_err)?;
        let filter = arg.get("filter").and_then(Value::as_str).unwrap_or("");
        let filter = bind_params(filter, arg.get("params")).map_err(js_error)?;
        let limit = arg.get("limit").and_then(Value::as_i64).unwrap_or(0);
        let limit = if limit <= 0 {
            MAX_FIND_RECORDS
        } else {
            limit.min(MAX_FIND_RECORDS)
        };
        let offset = arg
            .get("offset")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0);
        let mut query = crate::request::Query::new();
        query.insert("filter".into(), filter);
        if let Some(sort) = arg
            .get("sort")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            query.insert("sort".into(), sort.to_string());
        }
        // Pages of `limit` items; an offset that is no multiple of the limit reads one more
        // page and cuts.
        query.insert("perPage".into(), (limit + offset % limit).to_string());
        query.insert("page".into(), (offset / limit + 1).to_string());
        query.insert("skipTotal".into(), "1".into());
        let data = crate::access::RequestData::default();
        let page = self
            .block_on(crate::records::list(
                &state,
                &schema,
                &collection,
                Some(&auth),
                &query,
                &data,
            ))?
            .map_err(api_err)?;
        let skip = (offset % limit) as usize;
        let records: Vec<Value> = page
            .items
            .into_iter()
            .skip(skip)
            .take(limit as usize)
            .collect();
        Ok(json!({ "collection": collection.to_json(), "records": records }))
    }

    fn send_mail(&self, arg: &Value) -> OpResult {
        let state = self.state()?;
        let settings = state.settings();
        let config = crate::mail::SmtpConfig::from_settings(&settings);
        let to: Vec<String> = match arg.get("to") {
            Some(Value::Array(list)) => list.iter().filter_map(address).collect(),
            Some(one) => address(one).into_iter().collect(),
            None => Vec::new(),
        };
        if to.is_empty() {
            return Err(js_error("the mail message has no recipient"));
        }
        let text = |key: &str| {
            arg.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut config = config;
        if let Some(Value::Object(from)) = arg.get("from") {
            if let Some(address) = from.get("address").and_then(Value::as_str) {
                if !address.is_empty() {
                    config.sender_address = address.to_string();
                    config.sender_name = from
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                }
            }
        }
        let mail = crate::mail::Mail {
            to: String::new(),
            subject: text("subject"),
            html: text("html"),
            text: text("text"),
            kind: "hook",
        };
        // Through `onMailerSend` (in a task of its own: this VM must not wait for another).
        super::events::send(&state, config, to, mail, self.runtime.as_ref(), None);
        Ok(Value::Null)
    }
}

/// `{address, name}` or a plain string → `Name <address>` / `address`.
fn address(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Object(map) => {
            let address = map
                .get("address")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())?;
            match map
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(name) => Some(format!("{name} <{address}>")),
                None => Some(address.to_string()),
            }
        }
        _ => None,
    }
}

fn api_err(err: crate::error::ApiError) -> (Option<u16>, String) {
    (Some(err.status.as_u16()), err.message)
}

/// The system acting as a superuser (hooks bypass API rules, as in PocketBase).
pub fn system_auth(state: &AppState) -> crate::error::ApiResult<Auth> {
    let schema = state.schema();
    let superusers = schema
        .find(SUPERUSERS_ID)
        .cloned()
        .ok_or_else(|| crate::error::ApiError::internal("the _superusers collection is missing"))?;
    let mut record = Map::new();
    record.insert("id".into(), json!("system"));
    Ok(Auth {
        collection: superusers,
        record,
    })
}

/// Replaces `{:name}` placeholders with the params as literals of the filter language.
pub fn bind_params(filter: &str, params: Option<&Value>) -> Result<String, String> {
    let Some(Value::Object(params)) = params else {
        return Ok(filter.to_string());
    };
    let mut out = filter.to_string();
    for (name, value) in params {
        let literal = match value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.contains('\'') => format!("'{s}'"),
            Value::String(s) if !s.contains('"') => format!("\"{s}\""),
            Value::String(_) => return Err(format!("param {name}: a text with both quote kinds")),
            other => {
                let s = other.to_string();
                format!("'{}'", s.replace('\'', ""))
            }
        };
        out = out.replace(&format!("{{:{name}}}"), &literal);
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(secret: &str, data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn create_jwt(payload: &Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes());
    let input = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(secret, input.as_bytes()));
    format!("{input}.{signature}")
}

fn parse_jwt(token: &str, secret: &str) -> OpResult {
    let invalid = || js_error("invalid or expired token");
    let (input, signature) = token.rsplit_once('.').ok_or_else(invalid)?;
    let (_, body) = input.split_once('.').ok_or_else(invalid)?;
    let expected = URL_SAFE_NO_PAD.encode(hmac_sha256(secret, input.as_bytes()));
    if secret.is_empty() || expected != signature {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        if exp < chrono::Utc::now().timestamp() {
            return Err(invalid());
        }
    }
    Ok(claims)
}
