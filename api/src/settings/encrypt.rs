//! Settings encryption at rest (`--encryptionEnv VAR`), as PocketBase does it: the settings
//! JSON is sealed with AES-256-GCM under the 32 bytes of the variable's value, and stored as
//! standard base64 of `nonce (12 bytes) || ciphertext || tag` (measured on v0.40.6: its
//! `_params.value` of `settings` decrypts exactly so).
//!
//! In pocketlog the sealed text is the `ParamSet` value of the `settings` key, so both the
//! log and the projection hold only ciphertext: SMTP/S3 secrets are never in clear on disk
//! while the key is set (commits written before the key was set keep what they held until
//! compaction drops them).
//!
//! Invariants: a stored value that is a JSON object is plain settings and is read as such
//! (turning encryption on); anything else needs the key, and a missing or wrong key is an
//! error at start, never default settings silently replacing the stored ones.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;

/// Length of the key, in bytes of the variable's value (PocketBase: "32 characters").
pub const KEY_LEN: usize = 32;

/// The settings encryption key.
#[derive(Clone)]
pub struct SettingsKey {
    key: [u8; KEY_LEN],
    /// The variable it came from (for error messages).
    pub env: String,
}

impl std::fmt::Debug for SettingsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SettingsKey(${})", self.env)
    }
}

impl SettingsKey {
    /// The key in the value of `env`: `Ok(None)` when the variable is unset or empty (as in
    /// PocketBase, settings are then stored in clear), an error when its length is not 32.
    pub fn from_env(env: &str) -> anyhow::Result<Option<SettingsKey>> {
        let value = std::env::var(env).unwrap_or_default();
        if value.is_empty() {
            return Ok(None);
        }
        Self::new(env, value.as_bytes()).map(Some)
    }

    /// A key from its bytes (exactly [`KEY_LEN`]).
    pub fn new(env: &str, bytes: &[u8]) -> anyhow::Result<SettingsKey> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "--encryptionEnv {env}: the key must be {KEY_LEN} characters (bytes), it has {}",
                bytes.len()
            )
        })?;
        Ok(SettingsKey {
            key,
            env: env.to_string(),
        })
    }

    fn aead(&self) -> LessSafeKey {
        // AES-256 takes any 32-byte key, the length is checked in `new`.
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| {
                unreachable!("a {KEY_LEN}-byte key is always a valid AES-256 key")
            }),
        )
    }

    /// Seals `plain`: base64(nonce || ciphertext || tag).
    pub fn seal(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for the settings nonce"))?;
        let mut data = plain.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| anyhow::anyhow!("sealing the settings failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a value made by [`SettingsKey::seal`] (or by PocketBase with the same key).
    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let wrong = || {
            anyhow::anyhow!(
                "cannot decrypt the stored settings with the key in ${} (wrong key?)",
                self.env
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed.trim())
            .map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = rest.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

/// The text stored for `settings`: sealed with `key` when given, else the JSON itself.
pub fn store(settings: &Value, key: Option<&SettingsKey>) -> anyhow::Result<String> {
    let text = settings.to_string();
    match key {
        Some(key) => key.seal(&text),
        None => Ok(text),
    }
}

/// What a stored settings value holds: `(settings, was_plain)`. Plain JSON is read as is;
/// anything else is opened with `key`, and without one it is an error naming `env`.
pub fn load(
    stored: &str,
    key: Option<&SettingsKey>,
    env: Option<&str>,
) -> anyhow::Result<(Value, bool)> {
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(stored) {
        return Ok((value, true));
    }
    let Some(key) = key else {
        return Err(match env {
            Some(env) => anyhow::anyhow!(
                "the stored settings are encrypted and ${env} is empty: set it to the \
                 {KEY_LEN}-character key they were saved with"
            ),
            None => anyhow::anyhow!(
                "the stored settings are encrypted: start with --encryptionEnv VAR, VAR \
                 holding the {KEY_LEN}-character key they were saved with"
            ),
        });
    };
    let text = key.open(stored)?;
    let value = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("the decrypted settings are not JSON"))?;
    Ok((value, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seal_and_open_round_trip_and_a_wrong_key_fails() {
        let key = SettingsKey::new("K", b"abcdefghijklmnopqrstuvwxyz012345").unwrap();
        let settings = json!({"smtp": {"password": "SECRETPW123"}});
        let sealed = store(&settings, Some(&key)).unwrap();
        assert!(!sealed.contains("SECRETPW123"));
        assert_eq!(
            load(&sealed, Some(&key), Some("K")).unwrap(),
            (settings.clone(), false)
        );
        let wrong = SettingsKey::new("K", b"wrongwrongwrongwrongwrongwrong12").unwrap();
        assert!(load(&sealed, Some(&wrong), Some("K")).is_err());
        assert!(load(&sealed, None, Some("K")).is_err());
        // Plain settings are read with or without a key.
        let plain = store(&settings, None).unwrap();
        assert_eq!(load(&plain, Some(&key), None).unwrap(), (settings, true));
        assert!(SettingsKey::new("K", b"short").is_err());
    }
}
