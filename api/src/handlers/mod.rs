//! HTTP handlers, one file per resource.

pub mod auth;
pub mod auth_flows;
pub mod backups;
pub mod batch;
pub mod changes;
pub mod collections;
pub mod collections_extra;
pub mod common;
pub mod crons;
pub mod email_change;
pub mod files;
pub mod health;
pub mod history;
pub mod installer;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod otp;
pub mod realtime;
pub mod records;
pub mod settings;
pub mod sql;
pub mod trash;
pub mod views;
