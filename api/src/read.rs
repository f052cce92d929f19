//! Short reads on the read pool, run inline when a pooled connection is idle.
//!
//! Invariant: the closure is a bounded lookup (by primary key, a few ids); a long read must
//! go through `AppState::read` so it never blocks an async worker thread.

use crate::error::{ApiError, ApiResult};

/// Runs a short read (a lookup by primary key, a few ids) on this thread when a pooled
/// connection is idle, sparing the hand-off to a blocking thread and back (two context
/// switches, most of a view's cost on one core); otherwise like `AppState::read`.
pub async fn read_short<T, F>(state: &std::sync::Arc<crate::state::AppState>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&engine::ReadConn<'_>) -> engine::Result<T> + Send + 'static,
{
    if crate::asof::current().is_some() {
        return state.read(f).await;
    }
    match state.engine.try_read(f) {
        Ok(result) => result.map_err(ApiError::from),
        Err(f) => state.read(f).await,
    }
}
