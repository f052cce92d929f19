//! Password hashing for auth records: argon2id (RFC 9106) at the OWASP-recommended cost
//! (m = 19456 KiB, t = 2, p = 1), stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! PocketBase itself stores bcrypt (`$2a$10$…`); pocketlog deliberately uses argon2id instead
//! (see `docs/wire/auth.md` "Passwords"). bcrypt hashes brought over by
//! `pocketlog import-pocketbase` are verified as they are ([`verify_password`] accepts
//! `$2a$`/`$2b$`/`$2y$` at a cost of at most [`MAX_VERIFY_BCRYPT_COST`]); [`is_legacy_hash`] tells
//! the login path to re-hash such a password to argon2id after a successful login. Length/format
//! validation of the plain password (min from the field, max 71 chars, PocketBase's messages)
//! is the API layer's job; this module hashes whatever it is given.
//!
//! Login timing: when the identity is unknown, call [`dummy_verify`] so that "no such user" costs
//! the same as "wrong password" (PocketBase does the same with a dummy bcrypt compare).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Argon2 memory cost in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Argon2 iterations.
pub const T_COST: u32 = 2;
/// Argon2 lanes.
pub const P_COST: u32 = 1;

// Upper bounds on the parameters of a *stored* hash we are willing to evaluate. A corrupted or
// hostile stored hash (e.g. `m=4194304`) must not make a login request allocate gigabytes.
// Generous on purpose: well above anything [`hash_password`] produces.

/// Largest argon2 memory cost (KiB) of a stored hash that [`verify_password`] evaluates.
pub const MAX_VERIFY_M_COST_KIB: u32 = 262_144;
/// Largest argon2 iteration count of a stored hash that [`verify_password`] evaluates.
pub const MAX_VERIFY_T_COST: u32 = 16;
/// Largest argon2 lane count of a stored hash that [`verify_password`] evaluates.
pub const MAX_VERIFY_P_COST: u32 = 16;

/// Largest bcrypt cost of a stored hash that [`verify_password`] evaluates (PocketBase uses 10;
/// each step doubles the work, 14 is ~1 s).
pub const MAX_VERIFY_BCRYPT_COST: u32 = 14;

/// Prefixes of the bcrypt hashes PocketBase stores (Go's `x/crypto/bcrypt` writes `$2a$`).
const BCRYPT_PREFIXES: [&str; 3] = ["$2a$", "$2b$", "$2y$"];

/// Length of a bcrypt hash string (`$2a$10$` + 22 salt + 31 hash characters).
const BCRYPT_HASH_LEN: usize = 60;

/// True for a bcrypt hash (imported from PocketBase): verify it as it is, then re-hash the
/// password to argon2id at the next successful login.
pub fn is_legacy_hash(hash: &str) -> bool {
    BCRYPT_PREFIXES
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

/// Checks `plain` against a bcrypt hash; `false` for a malformed hash or one whose cost is
/// outside 4..=[`MAX_VERIFY_BCRYPT_COST`].
fn verify_bcrypt(plain: &str, hash: &str) -> bool {
    if hash.len() != BCRYPT_HASH_LEN {
        return false;
    }
    let cost = hash.get(4..6).and_then(|digits| digits.parse::<u32>().ok());
    if !matches!(cost, Some(cost) if (4..=MAX_VERIFY_BCRYPT_COST).contains(&cost))
        || hash.as_bytes().get(6) != Some(&b'$')
    {
        return false;
    }
    bcrypt::verify(plain, hash).unwrap_or(false)
}

/// Longest PHC string accepted by [`verify_password`]; ours are ~97 bytes.
pub const MAX_HASH_LEN: usize = 512;

/// A fixed argon2id hash (same parameters as [`hash_password`]) of a random throwaway password,
/// used by [`dummy_verify`]. Nobody knows its plain text; verification against it always fails.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$iyVJk/O+WFOQF3yUrioxiw$P2+6Wh0h4A+0eu3oJJqczYpslqyWLLFOHPZ08WcZdgg";

/// Error from [`try_hash_password`].
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::DEFAULT` is the very same triple
    // (argon2 0.5 defaults to OWASP's recommendation), so the fallback can never change the cost.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `plain` with argon2id and a fresh 16-byte random salt (OS CSPRNG); returns the PHC string.
///
/// Takes ~20–40 ms of CPU on purpose — call it from a blocking context
/// (`tokio::task::spawn_blocking`), not directly on an async worker.
///
/// # Panics
/// Only if argon2 rejects the input, which for argon2id at these parameters happens solely for
/// a password longer than `u32::MAX` bytes (impossible behind the API's 71-char limit). Use
/// [`try_hash_password`] where the input is not length-validated.
pub fn hash_password(plain: &str) -> String {
    match try_hash_password(plain) {
        Ok(h) => h,
        Err(e) => panic!("{e} (password of {} bytes)", plain.len()),
    }
}

/// A slot in the bounded set of concurrent argon2 computations: each takes 19 MiB and a full
/// core, so running more at once than there are cores only adds memory, not throughput.
struct HashSlot;

static HASH_SLOTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static HASH_SLOT_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl HashSlot {
    fn limit() -> usize {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .max(1)
    }

    fn acquire() -> HashSlot {
        let mut in_use = HASH_SLOTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *in_use >= Self::limit() {
            in_use = HASH_SLOT_FREED
                .wait(in_use)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *in_use += 1;
        HashSlot
    }
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        let mut in_use = HASH_SLOTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_use = in_use.saturating_sub(1);
        HASH_SLOT_FREED.notify_one();
    }
}

/// Fallible variant of [`hash_password`].
pub fn try_hash_password(plain: &str) -> Result<String, HashError> {
    let _slot = HashSlot::acquire();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks `plain` against a stored PHC string. Constant-time output comparison (argon2 crate).
///
/// Returns `false` — never panics — for: a wrong password, a malformed/empty/oversized hash, any
/// algorithm other than argon2id or bcrypt (argon2i, argon2d, …), or parameters above sane
/// bounds. bcrypt hashes (imported from PocketBase) are verified by [`verify_bcrypt`]. Costs one argon2 evaluation at the *stored* hash's parameters (~20–40 ms): run it in
/// a blocking context.
pub fn verify_password(plain: &str, hash: &str) -> bool {
    let _slot = HashSlot::acquire();
    if hash.len() > MAX_HASH_LEN {
        return false;
    }
    if is_legacy_hash(hash) {
        return verify_bcrypt(plain, hash);
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    hasher().verify_password(plain.as_bytes(), &parsed).is_ok()
}

/// Burns the same time as a real [`verify_password`] against a hash made by [`hash_password`],
/// for logins whose identity matched no record (timing side channel). Always "fails".
pub fn dummy_verify(plain: &str) {
    let _ = verify_password(plain, DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_password() {
        let h = hash_password("alicepass123");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("alicepass123", &h));
        assert!(!verify_password("alicepass124", &h));
        assert!(!verify_password("", &h));
        assert!(!verify_password("Alicepass123", &h));
    }

    #[test]
    fn salts_are_random() {
        let a = hash_password("same");
        let b = hash_password("same");
        assert_ne!(a, b);
        assert!(verify_password("same", &a) && verify_password("same", &b));
    }

    #[test]
    fn unicode_and_empty_passwords() {
        let h = hash_password("pässwörd🔑");
        assert!(verify_password("pässwörd🔑", &h));
        assert!(!verify_password("passwordX", &h));
        let e = hash_password("");
        assert!(verify_password("", &e));
        assert!(!verify_password(" ", &e));
    }

    #[test]
    fn malformed_hashes_are_false_not_panics() {
        let good = hash_password("pw");
        let long = "$argon2id$".repeat(100);
        let mut cases: Vec<String> = vec![
            String::new(),
            "$".into(),
            "$$$$$".into(),
            "plain-text-password".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$".into(),
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHRzYWx0$aGFzaA".into(),
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$!!!!$????".into(),
            // Hostile cost: would allocate 4 GiB if evaluated.
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
            "$argon2id$v=19$m=19456,t=1000000,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
            // bcrypt of another password, and malformed or too costly bcrypt.
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhW".into(),
            "$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
            "$2a$xx$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
            "$2a$".into(),
            long,
            good[..good.len() - 5].to_string(),
            good.replace("argon2id", "argon2i"),
            good.replace("argon2id", "argon2d"),
            format!("{good}x"),
        ];
        cases.push(good.replacen("m=19456", "m=19457", 1));
        for c in &cases {
            assert!(!verify_password("pw", c), "accepted malformed hash {c:?}");
        }
        assert!(verify_password("pw", &good));
    }

    #[test]
    fn bcrypt_hashes_verify_as_they_are() {
        // Made with Go's x/crypto/bcrypt semantics (cost 4 for speed) by the `bcrypt` crate.
        let hash = bcrypt::hash("alicepass123", 4).expect("bcrypt hash");
        let go_style = hash.replacen("$2b$", "$2a$", 1);
        for h in [&hash, &go_style] {
            assert!(is_legacy_hash(h));
            assert!(verify_password("alicepass123", h), "{h}");
            assert!(!verify_password("alicepass124", h));
        }
        assert!(!is_legacy_hash(&hash_password("x")));
    }

    #[test]
    fn dummy_hash_matches_production_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("dummy hash parses");
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
        let p = Params::try_from(&parsed).expect("params");
        assert_eq!(
            (p.m_cost(), p.t_cost(), p.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
        dummy_verify("anything");
        assert!(!verify_password("", DUMMY_HASH));
    }

    /// Prints the cost of one hash (run with `--nocapture`); the time is only asserted loosely,
    /// because debug builds and shared CI cores vary a lot.
    #[test]
    fn hash_timing() {
        let runs = 5;
        let start = std::time::Instant::now();
        let mut last = String::new();
        for i in 0..runs {
            last = hash_password(&format!("benchmark-password-{i}"));
        }
        let per_hash = start.elapsed() / runs;
        let start = std::time::Instant::now();
        assert!(verify_password("benchmark-password-4", &last));
        let verify = start.elapsed();
        eprintln!(
            "argon2id m=19456,t=2,p=1: hash_password {per_hash:?}/hash, verify_password {verify:?}"
        );
        assert!(per_hash < std::time::Duration::from_secs(5));
    }
}
