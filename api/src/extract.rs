//! Request extractors for the caller's identity, so that no handler resolves or checks it by
//! hand.
//!
//! - [`Caller`] is the authenticated record behind the `Authorization` header, or a guest.
//!   Anything invalid (bad signature, expired, wrong token type, unknown record) is a guest,
//!   never an error: PocketBase answers such requests as it answers guests.
//! - [`Superuser`] requires a superuser: a guest gets 401, another record 403, with the
//!   reference's messages. The check happens before the handler runs, so a handler that takes
//!   a `Superuser` cannot forget it.
//! - [`SuperuserBody`] is the same check for routes that take a body: the body is read first
//!   (413 before 401/403, as on the reference), then the caller is checked.
//!
//! Invariant: both resolve the token through [`access::authenticate`], the one place that
//! verifies tokens; neither caches anything across requests.

use crate::access::{self, Auth};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The caller: `Some(auth)` for a valid auth token, `None` for a guest.
#[derive(Clone)]
pub struct Caller(pub Option<Auth>);

impl Caller {
    /// Whether the caller is a superuser.
    pub fn is_superuser(&self) -> bool {
        access::is_superuser(&self.0)
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(access::authenticate(state, &parts.headers).await))
    }
}

/// A caller that is a superuser (401 for guests, 403 for other records).
#[derive(Clone)]
pub struct Superuser(pub Auth);

/// Message of a guest on a superuser-only route.
pub const GUEST_MESSAGE: &str = "The request requires valid record authorization token.";
/// Message of a non-superuser record on a superuser-only route.
pub const FORBIDDEN_MESSAGE: &str = "The authorized record is not allowed to perform this action.";

/// The superuser check on an already resolved caller (for handlers that need the caller
/// before deciding, and for tests of the messages).
pub fn require_superuser(auth: Option<Auth>) -> Result<Auth, ApiError> {
    match auth {
        Some(auth) if auth.is_superuser() => Ok(auth),
        Some(_) => Err(ApiError::forbidden(FORBIDDEN_MESSAGE)),
        None => Err(ApiError::unauthorized(GUEST_MESSAGE)),
    }
}

impl FromRequestParts<Arc<AppState>> for Superuser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let auth = access::authenticate(state, &parts.headers).await;
        require_superuser(auth).map(Superuser)
    }
}

/// A superuser caller plus the raw request body, for superuser-only routes that take a body.
///
/// The body is read first, so an oversized body answers 413 before the 401/403 (the
/// reference's body limit runs before its auth check); then the caller must be a superuser.
pub struct SuperuserBody(pub Auth, pub Bytes);

impl FromRequest<Arc<AppState>> for SuperuserBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let auth = access::authenticate(state, &parts.headers).await;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let auth = require_superuser(auth).map_err(IntoResponse::into_response)?;
        Ok(SuperuserBody(auth, bytes))
    }
}
