//! The HTTP side of login alerts: the sign-in handlers (password, OTP, OAuth2) call
//! [`after_sign_in`] once a sign-in completed, with the request's real IP (per
//! `trustedProxy`) and `User-Agent`; [`crate::auth::origins`] does the rest.

use crate::model::Collection;
use crate::state::AppState;
use axum::http::{Extensions, HeaderMap};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Records the sign-in origin of `record` and queues the alert mail if it is new.
pub async fn after_sign_in(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    headers: &HeaderMap,
    extensions: &Extensions,
) {
    if !crate::auth::origins::enabled(collection) {
        return;
    }
    let ip = crate::ratelimit::client_ip_of(state, headers, extensions).real;
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    crate::auth::origins::after_sign_in(state, collection, record, &ip, user_agent).await;
}
