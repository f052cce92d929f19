//! Response helpers shared by handlers: JSON responses with `fields` picking, 204, the list
//! envelope. Request parsing lives in `crate::request` (re-exported here for the handlers).
//!
//! 1. Malformed bodies get PocketBase's 400 envelope, never axum's plain-text rejection.
//! 2. `fields` picking applies to every 2xx JSON response.

pub use crate::records::present::{excerpt, pick_fields};
pub use crate::request::{
    form_body, form_urlencoded_pairs, paging, parse_body, parse_bool, percent_decode, Paging,
    Query, JSON_PAYLOAD_KEY, PER_PAGE_MAX,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A JSON 200 response with `fields` picking applied.
pub fn json_response(query: &Query, value: Value) -> Response {
    let value = match query.get("fields") {
        Some(fields) if !fields.trim().is_empty() => pick_fields(value, fields),
        _ => value,
    };
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// 204 with an empty body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The list envelope.
pub fn list_envelope(items: Vec<Value>, paging: Paging, total: Option<i64>) -> Value {
    let (total_items, total_pages) = match total {
        Some(total) => (total, (total + paging.per_page - 1) / paging.per_page),
        None => (-1, -1),
    };
    serde_json::json!({"items": items, "page": paging.page, "perPage": paging.per_page,
        "totalItems": total_items, "totalPages": total_pages})
}
