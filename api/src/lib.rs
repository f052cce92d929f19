//! pocketlog's HTTP API: PocketBase-compatible routes on top of the event-sourced engine.
//!
//! `router(state)` builds the whole axum `Router`, so tests can drive it without a socket.

pub mod access;
pub mod asof;
pub mod auth;
pub mod auth_cache;
pub mod backups;
pub mod backups_s3;
pub mod client_ip;
pub mod cluster;
pub mod collections;
pub mod crons;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod files;
pub mod handlers;
pub mod history;
pub mod hooks;
pub mod import;
pub mod installer;
pub mod mail;
pub mod metrics;
pub mod migrations;
pub mod model;
pub mod public;
pub mod ratelimit;
pub mod read;
pub mod realtime;
pub mod records;
pub mod redact;
pub mod request;
pub mod request_log;
pub mod routes;
pub mod settings;
pub mod sql;
pub mod state;
pub mod trash;
pub mod webhooks;

pub use routes::router;
pub use state::{AppState, ServerOptions};
