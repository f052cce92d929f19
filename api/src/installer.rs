//! First-run installer: `POST /api/installer` creates the first superuser with the one-time link
//! `serve` prints when there is none (`<base>/_/#/pbinstall/<token>`, as PocketBase does).
//!
//! Token design (ours; PocketBase signs a JWT for a fake superuser instead):
//! 1. Each server process draws a random 32-byte secret at start, kept only in memory
//!    ([`Installer`] in `AppState`). Nothing is written to the data dir or the log, so a restart
//!    invalidates every earlier link (the new process prints a new one).
//! 2. A token is `pbinstall.<expiry, unix seconds>.<base64url HMAC-SHA256(secret, "pbinstall.<expiry>")>`;
//!    the MAC is checked in constant time, and the expiry (30 minutes by default) must lie ahead.
//! 3. The endpoint accepts `{token, email, password, passwordConfirm}` and creates the superuser
//!    through the ordinary record-create path (same validation, hashing and commit), but only while
//!    no superuser exists. Installer requests are serialized by a lock, so two concurrent calls
//!    with the same link cannot both create one. Once a superuser exists the link is useless.
//!
//! This module holds the secret and the token checks ([`Installer`], kept in `AppState`);
//! `handlers/installer.rs` is the HTTP glue.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// How long a printed installer link stays valid.
pub const LINK_TTL_SECS: i64 = 30 * 60;

const PREFIX: &str = "pbinstall";

/// The per-process installer secret.
pub struct Installer {
    secret: [u8; 32],
    lock: tokio::sync::Mutex<()>,
}

impl Default for Installer {
    fn default() -> Self {
        Installer::new()
    }
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Installer { .. }")
    }
}

impl Installer {
    /// A fresh random secret.
    pub fn new() -> Installer {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        Installer {
            secret,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mac(&self, expiry: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(format!("{PREFIX}.{expiry}").as_bytes());
        mac
    }

    /// A token valid until `expiry_unix` (seconds).
    pub fn token(&self, expiry_unix: i64) -> String {
        let tag = self.mac(expiry_unix).finalize().into_bytes();
        format!("{PREFIX}.{expiry_unix}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// A token valid for [`LINK_TTL_SECS`] from now.
    pub fn new_link_token(&self) -> String {
        self.token(chrono::Utc::now().timestamp() + LINK_TTL_SECS)
    }

    /// True when `token` was made by this process and has not expired at `now_unix`.
    pub fn verify(&self, token: &str, now_unix: i64) -> bool {
        let mut parts = token.split('.');
        let (Some(PREFIX), Some(expiry), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<i64>() else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        expiry > now_unix && self.mac(expiry).verify_slice(&tag).is_ok()
    }
}

impl Installer {
    /// Serializes installer requests (held while checking for and creating the superuser).
    pub async fn serialize(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_unexpired_and_unaltered() {
        let installer = Installer::new();
        let token = installer.token(1_000);
        assert!(installer.verify(&token, 999));
        assert!(!installer.verify(&token, 1_000), "expired");
        assert!(
            !installer.verify(&token.replace("1000", "2000"), 999),
            "expiry altered"
        );
        assert!(!Installer::new().verify(&token, 999), "another process");
        assert!(!installer.verify("", 0));
        assert!(!installer.verify("pbinstall.x.y", 0));
        assert!(!installer.verify(&format!("{token}.extra"), 999));
    }
}
