//! `ApiError`: PocketBase's error envelope `{"data":{…},"message":"…","status":N}`.
//!
//! 1. `data` is always an object; field errors nest as `{field: {code, message, params?}}`.
//! 2. Messages are "sentenized": first letter upper-case, trailing period.
//! 3. Internal causes are logged, never sent to the client.
//! 4. Engine errors a caller can act on get a 4xx with a clear message: a full disk and a
//!    commit over the size limit are 400 (nothing was committed), a full queue is 503.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An HTTP error in PocketBase's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Sentence shown to the client.
    pub message: String,
    /// Field errors (object).
    pub data: Map<String, Value>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Capitalises the first letter and ends with a period, as PocketBase does.
pub fn sentenize(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let mut chars = trimmed.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') && !out.ends_with('?') && !out.ends_with('!') {
        out.push('.');
    }
    out
}

impl ApiError {
    /// An error with a status and message and no field errors.
    pub fn new(status: StatusCode, message: &str) -> Self {
        ApiError {
            status,
            message: sentenize(message),
            data: Map::new(),
        }
    }

    /// 400 with the default message.
    pub fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 `Something went wrong while processing your request.`
    pub fn bad_request_default() -> Self {
        Self::bad_request("Something went wrong while processing your request.")
    }

    /// 404 `The requested resource wasn't found.`
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        )
    }

    /// 403 with a message.
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 401 with a message.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 500; the cause is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong while processing your request.",
        )
    }

    /// 400 with field errors.
    pub fn validation(message: &str, data: Map<String, Value>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: sentenize(message),
            data,
        }
    }

    /// Sets the field errors.
    pub fn with_data(mut self, data: Map<String, Value>) -> Self {
        self.data = data;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"data": self.data, "message": self.message, "status": self.status.as_u16()})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, axum::Json(body)).into_response()
    }
}

/// One field validation error item.
pub fn field_error(code: &str, message: &str, params: Option<Value>) -> Value {
    let mut item = Map::new();
    item.insert("code".into(), Value::String(code.to_string()));
    item.insert("message".into(), Value::String(sentenize(message)));
    if let Some(params) = params {
        item.insert("params".into(), params);
    }
    Value::Object(item)
}

/// Collected field errors.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(pub Map<String, Value>);

impl FieldErrors {
    /// Adds an error unless the field has one already.
    pub fn add(&mut self, field: &str, code: &str, message: &str, params: Option<Value>) {
        if !self.0.contains_key(field) {
            self.0
                .insert(field.to_string(), field_error(code, message, params));
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Into a 400 with `message`.
    pub fn into_error(self, message: &str) -> ApiError {
        ApiError::validation(message, self.0)
    }
}

impl From<engine::Error> for ApiError {
    fn from(err: engine::Error) -> Self {
        match err {
            engine::Error::NotLeader => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This node is a replica and cannot take the write now; try again.",
            ),
            engine::Error::Overloaded => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy, please try again.",
            ),
            // Not committed (the engine answers an error only for writes that are not in the
            // log). The reference answers 400 with its generic per-endpoint failure message on
            // a full disk; the message here says what happened and what fixes it.
            full if full.is_storage_full() => {
                tracing::error!(error = %full, "write refused: the disk is full");
                ApiError::bad_request(
                    "Failed to save: the server's disk is full. Nothing was changed; \
                     try again once space is freed.",
                )
            }
            engine::Error::CommitTooLarge { bytes, max } => {
                tracing::warn!(bytes, max, "a change exceeded the commit size limit");
                ApiError::bad_request(&format!(
                    "Failed to save: the change is too large ({bytes} bytes once encoded; the \
                     limit is {max} bytes). Nothing was changed."
                ))
            }
            engine::Error::QueryTimeout(timeout) => {
                tracing::warn!(?timeout, "a read query was stopped by the query timeout");
                ApiError::bad_request(
                    "The query took too long and was stopped (the server's --queryTimeout).",
                )
            }
            other => ApiError::internal(other),
        }
    }
}
