//! PocketBase-compatible JWTs (HS256) and random identifiers/secrets.
//!
//! Contract: `docs/wire/auth.md`. Summary:
//! - compact JWT, base64url without padding, header always `{"alg":"HS256","typ":"JWT"}`;
//! - payload keys in alphabetical order, no `iat`/`nbf`/`iss`/`sub`/`aud`; `exp` in Unix seconds;
//! - claims per type (see [`TokenClaims`]): `collectionId`, `exp`, `id`, `type`, plus
//!   `refreshable` (auth), `email` (verification, passwordReset, emailChange) and `newEmail`
//!   (emailChange);
//! - `signing_key = record.tokenKey + collection.<kind>Token.secret` ([`signing_key`]),
//!   signature = HMAC-SHA256 over `b64(header) + "." + b64(payload)`.
//!
//! Verification flow for the API layer (`docs/wire/auth.md` "Signing and checking"):
//! [`decode_unverified`] → check the type is the one the endpoint accepts → load the record
//! `collectionId`/`id` (must be in an auth collection) → [`verify`] with
//! [`signing_key`]`(record.tokenKey, collection.<kind>Token.secret)` → on any failure treat the
//! request as having **no token** (guest), never as an error by itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are rejected before any decoding (ours are ~200–300 bytes).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The only header pocketlog (and PocketBase) ever emits.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// `[a-zA-Z0-9]` — tokenKey, collection token secrets, realtime client ids.
pub const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// `[a-z0-9]` — record ids (PocketBase `autogeneratePattern` `[a-z0-9]{15}`).
pub const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a record's hidden `tokenKey` field.
pub const TOKEN_KEY_LEN: usize = 50;
/// Length of each per-collection token secret (`authToken.secret`, `fileToken.secret`, …).
pub const COLLECTION_SECRET_LEN: usize = 50;
/// Length of a record id.
pub const RECORD_ID_LEN: usize = 15;
/// Length of a realtime (SSE) client id.
pub const REALTIME_CLIENT_ID_LEN: usize = 40;

/// The `type` claim. Serialized exactly as PocketBase spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenType {
    /// `"auth"` — session token (login, refresh, impersonate). Accepted in `Authorization`.
    Auth,
    /// `"file"` — protected file / backup download (`?token=`), 180 s by default.
    File,
    /// `"verification"` — emailed, confirms `verified`.
    Verification,
    /// `"passwordReset"` — emailed, single use because a reset regenerates `tokenKey`.
    PasswordReset,
    /// `"emailChange"` — emailed, carries `email` and `newEmail`.
    EmailChange,
}

impl TokenType {
    /// The collection option holding this type's secret and duration, e.g. `authToken`
    /// (→ `authToken.secret`, `authToken.duration`).
    pub fn collection_option(self) -> &'static str {
        match self {
            TokenType::Auth => "authToken",
            TokenType::File => "fileToken",
            TokenType::Verification => "verificationToken",
            TokenType::PasswordReset => "passwordResetToken",
            TokenType::EmailChange => "emailChangeToken",
        }
    }

    /// PocketBase's default lifetime in seconds for this type (collection options;
    /// `_superusers` overrides `authToken.duration` to 86400).
    pub fn default_duration_secs(self) -> i64 {
        match self {
            TokenType::Auth => 432_000,
            TokenType::File => 180,
            TokenType::Verification => 86_400,
            TokenType::PasswordReset => 1_800,
            TokenType::EmailChange => 1_800,
        }
    }
}

/// JWT payload. Field order is alphabetical so the serialized JSON key order matches
/// PocketBase's byte for byte; optional claims are omitted when `None`.
///
/// | type | claims |
/// |---|---|
/// | auth | `collectionId, exp, id, refreshable, type` |
/// | file | `collectionId, exp, id, type` |
/// | verification, passwordReset | `collectionId, email, exp, id, type` |
/// | emailChange | `collectionId, email, exp, id, newEmail, type` |
///
/// Use the constructors ([`TokenClaims::auth`], …) to get the right shape; [`verify`] and
/// [`decode_unverified`] reject claims whose shape does not match their type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Id of the record's collection (`_pb_users_auth_`, `pbc_3142635823` for `_superusers`).
    #[serde(rename = "collectionId")]
    pub collection_id: String,
    /// Record email at issue time (verification, passwordReset, emailChange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expiry, Unix seconds. Valid while `now < exp` (no leeway).
    pub exp: i64,
    /// Record id.
    pub id: String,
    /// Requested new email (emailChange only).
    #[serde(rename = "newEmail", default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    /// Auth tokens only: `true` for logins/refresh, `false` for impersonation tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshable: Option<bool>,
    /// Token type.
    #[serde(rename = "type")]
    pub token_type: TokenType,
}

impl TokenClaims {
    fn base(token_type: TokenType, collection_id: &str, id: &str, exp: i64) -> Self {
        TokenClaims {
            collection_id: collection_id.to_owned(),
            email: None,
            exp,
            id: id.to_owned(),
            new_email: None,
            refreshable: None,
            token_type,
        }
    }

    /// `auth` token; `refreshable = false` for impersonation.
    pub fn auth(collection_id: &str, id: &str, exp: i64, refreshable: bool) -> Self {
        TokenClaims {
            refreshable: Some(refreshable),
            ..Self::base(TokenType::Auth, collection_id, id, exp)
        }
    }

    /// `file` token.
    pub fn file(collection_id: &str, id: &str, exp: i64) -> Self {
        Self::base(TokenType::File, collection_id, id, exp)
    }

    /// `verification` token.
    pub fn verification(collection_id: &str, id: &str, exp: i64, email: &str) -> Self {
        TokenClaims {
            email: Some(email.to_owned()),
            ..Self::base(TokenType::Verification, collection_id, id, exp)
        }
    }

    /// `passwordReset` token.
    pub fn password_reset(collection_id: &str, id: &str, exp: i64, email: &str) -> Self {
        TokenClaims {
            email: Some(email.to_owned()),
            ..Self::base(TokenType::PasswordReset, collection_id, id, exp)
        }
    }

    /// `emailChange` token.
    pub fn email_change(
        collection_id: &str,
        id: &str,
        exp: i64,
        email: &str,
        new_email: &str,
    ) -> Self {
        TokenClaims {
            email: Some(email.to_owned()),
            new_email: Some(new_email.to_owned()),
            ..Self::base(TokenType::EmailChange, collection_id, id, exp)
        }
    }

    /// Structural check: non-empty `id`/`collectionId`, and exactly the optional claims the type
    /// carries (auth → `refreshable`; verification/passwordReset → `email`; emailChange →
    /// `email` + `newEmail`; file → none).
    pub fn is_well_formed(&self) -> bool {
        if self.id.is_empty() || self.collection_id.is_empty() {
            return false;
        }
        let (refreshable, email, new_email) = match self.token_type {
            TokenType::Auth => (true, false, false),
            TokenType::File => (false, false, false),
            TokenType::Verification | TokenType::PasswordReset => (false, true, false),
            TokenType::EmailChange => (false, true, true),
        };
        self.refreshable.is_some() == refreshable
            && self.email.is_some() == email
            && self.new_email.is_some() == new_email
    }

    /// `true` for an auth token that auth-refresh may re-issue (`refreshable: true`).
    pub fn is_refreshable(&self) -> bool {
        self.token_type == TokenType::Auth && self.refreshable == Some(true)
    }
}

/// Why [`verify`] rejected a token. The API layer normally maps every variant to "no token"
/// (guest); the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments, too long, bad JSON, or claims not well-formed for their type.
    #[error("malformed token")]
    Malformed,
    /// Header `alg` is not `HS256` (`none`, `RS256`, …) or the header is otherwise unacceptable.
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// HMAC mismatch (wrong key, e.g. after a `tokenKey`/secret rotation, or tampering).
    #[error("invalid token signature")]
    BadSignature,
    /// `now >= exp`.
    #[error("token expired")]
    Expired,
    /// Valid token, but not of the type the caller required ([`verify_as`]).
    #[error("unexpected token type")]
    WrongType,
    /// Verification attempted with an empty signing key (both tokenKey and secret empty);
    /// refused because anyone could forge such a token.
    #[error("empty signing key")]
    EmptyKey,
}

/// Concatenates the signing key exactly as PocketBase does:
/// `record.tokenKey + collection.<kind>Token.secret` (tokenKey first).
pub fn signing_key(record_token_key: &str, collection_secret: &str) -> String {
    let mut k = String::with_capacity(record_token_key.len() + collection_secret.len());
    k.push_str(record_token_key);
    k.push_str(collection_secret);
    k
}

fn mac(signing_key: &str) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed first), so hmac's
    // `new_from_slice` cannot fail; the `Result` only exists for the generic `KeyInit` API.
    match <HmacSha256 as Mac>::new_from_slice(signing_key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Signs `claims` as a compact HS256 JWT with `signing_key` (see [`signing_key`]).
///
/// The output is deterministic: identical claims and key give an identical token.
pub fn sign(claims: &TokenClaims, signing_key: &str) -> String {
    debug_assert!(!signing_key.is_empty(), "signing with an empty key");
    debug_assert!(
        claims.is_well_formed(),
        "claims not well-formed for their type"
    );
    // Serializing a struct of strings/ints/bools/unit enums into JSON cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(300);
    token.push_str(&URL_SAFE_NO_PAD.encode(HEADER_JSON));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let mut m = mac(signing_key);
    m.update(token.as_bytes());
    let sig = m.finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    token
}

/// The three segments of a compact JWT, split without allocation.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signing_input: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Option<Parts<'_>> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    if payload.contains('.') || header.is_empty() || payload.is_empty() {
        return None;
    }
    Some(Parts {
        header,
        payload,
        signing_input,
        signature,
    })
}

fn decode_claims(payload_b64: &str) -> Option<TokenClaims> {
    let bytes = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
    let claims: TokenClaims = serde_json::from_slice(&bytes).ok()?;
    claims.is_well_formed().then_some(claims)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn check_header(header_b64: &str) -> Result<(), TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // Exact match: `none`, `HS384`, `RS256`, `hs256`, … are all refused. A `crit` header would
    // demand extensions we don't implement (RFC 7515 §4.1.11), so it is refused too.
    if header.alg != "HS256" || header.crit.is_some() {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    Ok(())
}

/// Parses the claims **without** checking the signature or expiry — only to learn which
/// collection/record (and therefore which key) to load. Never trust the result for anything else.
///
/// Returns `None` for tokens longer than [`MAX_TOKEN_LEN`], anything that is not three
/// base64url segments, a payload that isn't a JSON object with the expected claims, an unknown
/// `type`, an empty `id`/`collectionId`, or claims not matching their type's shape. Never panics.
pub fn decode_unverified(token: &str) -> Option<TokenClaims> {
    decode_claims(split(token)?.payload)
}

/// Fully verifies `token` with `signing_key` at time `now_unix` (Unix seconds):
/// size/shape, header `alg == "HS256"` (anything else incl. `none` is refused), HMAC-SHA256
/// signature (constant-time compare), claim shape for the `type`, and `now_unix < exp` (no leeway).
///
/// Does not restrict the `type`; endpoints must accept only their type — use [`verify_as`]
/// (e.g. the `Authorization` header accepts only [`TokenType::Auth`]).
pub fn verify(token: &str, signing_key: &str, now_unix: i64) -> Result<TokenClaims, TokenError> {
    let parts = split(token).ok_or(TokenError::Malformed)?;
    check_header(parts.header)?;
    if signing_key.is_empty() {
        return Err(TokenError::EmptyKey);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(signing_key);
    m.update(parts.signing_input.as_bytes());
    // `verify_slice` compares in constant time and rejects wrong lengths.
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let claims = decode_claims(parts.payload).ok_or(TokenError::Malformed)?;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// [`verify`] plus a check that the token is of type `expected`.
pub fn verify_as(
    token: &str,
    signing_key: &str,
    now_unix: i64,
    expected: TokenType,
) -> Result<TokenClaims, TokenError> {
    let claims = verify(token, signing_key, now_unix)?;
    if claims.token_type != expected {
        return Err(TokenError::WrongType);
    }
    Ok(claims)
}

/// Extracts the token from an `Authorization` header value exactly as PocketBase v0.40.6
/// does (measured, issue #12 hole 7): the value without HTTP's optional surrounding
/// whitespace (spaces/tabs), then one case-insensitive `Bearer ` prefix (one space) is
/// dropped; the rest is the token as is. `Bearer  x` (two spaces) or `Bearer\tx` therefore
/// yield a token that fails verification (a guest). Returns `None` when empty.
pub fn token_from_authorization(header_value: &str) -> Option<&str> {
    let v = header_value.trim_matches([' ', '\t']);
    let t = match v.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => &v[7..],
        _ => v,
    };
    (!t.is_empty()).then_some(t)
}

/// `len` characters drawn uniformly (rejection sampling, no modulo bias) from `alphabet` with
/// rand's `ThreadRng` (ChaCha12, seeded and periodically reseeded from the OS — a CSPRNG).
///
/// `alphabet` should be ASCII; each byte maps to the char of the same code point. An empty
/// alphabet yields an empty string.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    if alphabet.is_empty() {
        return String::new();
    }
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// New record `tokenKey`: 50 chars `[a-zA-Z0-9]`. Regenerate on password change/reset and
/// email change to invalidate all tokens of the record.
pub fn new_token_key() -> String {
    random_string(TOKEN_KEY_LEN, ALPHANUMERIC)
}

/// New per-collection token secret: 50 chars `[a-zA-Z0-9]`. Never returned by the API.
pub fn new_collection_secret() -> String {
    random_string(COLLECTION_SECRET_LEN, ALPHANUMERIC)
}

/// New record id: 15 chars `[a-z0-9]`.
pub fn new_record_id() -> String {
    random_string(RECORD_ID_LEN, LOWER_ALPHANUMERIC)
}

/// New realtime client id: 40 chars `[A-Za-z0-9]`.
pub fn new_realtime_client_id() -> String {
    random_string(REALTIME_CLIENT_ID_LEN, ALPHANUMERIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const NOW: i64 = 1_795_700_000;

    fn key() -> String {
        signing_key(&"k".repeat(50), &"s".repeat(50))
    }

    fn auth_claims() -> TokenClaims {
        TokenClaims::auth("_pb_users_auth_", "o0k6hlh1ivc6xwf", 1_796_169_698, true)
    }

    /// Re-signs an arbitrary header/payload pair with `key` (for forging test tokens).
    fn forge(header: &str, payload: &str, key: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut m = mac(key);
        m.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        )
    }

    #[test]
    fn header_and_payload_match_captured_pocketbase_token() {
        // Alice's token as captured from PocketBase 0.40.6 (auth-with-password).
        let captured = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjb2xsZWN0aW9uSWQiOiJfcGJfdXNlcnNfYXV0aF8iLCJleHAiOjE3OTYxNjk2OTgsImlkIjoibzBrNmhsaDFpdmM2eHdmIiwicmVmcmVzaGFibGUiOnRydWUsInR5cGUiOiJhdXRoIn0";
        let ours = sign(&auth_claims(), &key());
        let (signing_input, _) = ours.rsplit_once('.').expect("three parts");
        assert_eq!(signing_input, captured);
        assert_eq!(decode_unverified(&ours), Some(auth_claims()));
    }

    #[test]
    fn payload_json_for_every_type_matches_spec() {
        let cases = [
            (
                TokenClaims::auth("_pb_users_auth_", "o0k6hlh1ivc6xwf", 1795741431, false),
                r#"{"collectionId":"_pb_users_auth_","exp":1795741431,"id":"o0k6hlh1ivc6xwf","refreshable":false,"type":"auth"}"#,
            ),
            (
                TokenClaims::file("_pb_users_auth_", "o0k6hlh1ivc6xwf", 1795737957),
                r#"{"collectionId":"_pb_users_auth_","exp":1795737957,"id":"o0k6hlh1ivc6xwf","type":"file"}"#,
            ),
            (
                TokenClaims::verification(
                    "_pb_users_auth_",
                    "o0k6hlh1ivc6xwf",
                    1795824205,
                    "alice@example.com",
                ),
                r#"{"collectionId":"_pb_users_auth_","email":"alice@example.com","exp":1795824205,"id":"o0k6hlh1ivc6xwf","type":"verification"}"#,
            ),
            (
                TokenClaims::password_reset(
                    "_pb_users_auth_",
                    "lq38hoczobdnaja",
                    1795739613,
                    "bob@example.com",
                ),
                r#"{"collectionId":"_pb_users_auth_","email":"bob@example.com","exp":1795739613,"id":"lq38hoczobdnaja","type":"passwordReset"}"#,
            ),
            (
                TokenClaims::email_change(
                    "_pb_users_auth_",
                    "lq38hoczobdnaja",
                    1795739618,
                    "bob@example.com",
                    "bob2@example.com",
                ),
                r#"{"collectionId":"_pb_users_auth_","email":"bob@example.com","exp":1795739618,"id":"lq38hoczobdnaja","newEmail":"bob2@example.com","type":"emailChange"}"#,
            ),
        ];
        for (claims, json) in cases {
            assert_eq!(serde_json::to_string(&claims).expect("ser"), json);
            let tok = sign(&claims, &key());
            assert_eq!(verify(&tok, &key(), 1_795_000_000), Ok(claims.clone()));
            assert_eq!(
                verify_as(&tok, &key(), 1_795_000_000, claims.token_type),
                Ok(claims)
            );
        }
    }

    #[test]
    fn round_trip() {
        let tok = sign(&auth_claims(), &key());
        assert_eq!(tok.split('.').count(), 3);
        assert!(!tok.contains('='));
        assert_eq!(verify(&tok, &key(), NOW), Ok(auth_claims()));
        assert!(auth_claims().is_refreshable());
        // Deterministic.
        assert_eq!(tok, sign(&auth_claims(), &key()));
    }

    #[test]
    fn signing_key_order_is_token_key_then_secret() {
        assert_eq!(signing_key("TK", "SECRET"), "TKSECRET");
        let tok = sign(&auth_claims(), &signing_key("tk", "sec"));
        assert_eq!(
            verify(&tok, &signing_key("sec", "tk"), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn wrong_key_fails() {
        let secret = new_collection_secret();
        let old = signing_key(&new_token_key(), &secret);
        let tok = sign(&auth_claims(), &old);
        // tokenKey regenerated (password change/reset, email change).
        let rotated = signing_key(&new_token_key(), &secret);
        assert_eq!(verify(&tok, &rotated, NOW), Err(TokenError::BadSignature));
        assert_eq!(verify(&tok, "", NOW), Err(TokenError::EmptyKey));
        assert_eq!(verify(&tok, &old, NOW), Ok(auth_claims()));
    }

    #[test]
    fn tampered_payload_or_signature_fails() {
        let tok = sign(&auth_claims(), &key());
        let parts: Vec<&str> = tok.split('.').collect();

        // Payload swapped for another record id, signature kept.
        let evil = TokenClaims::auth("_pb_users_auth_", "lq38hoczobdnaja", 1_796_169_698, true);
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).expect("ser"));
        let t = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(verify(&t, &key(), NOW), Err(TokenError::BadSignature));
        // decode_unverified happily reads it — that's why it must never be trusted.
        assert_eq!(decode_unverified(&t), Some(evil));

        // Every single-character change of the signature or payload fails.
        for i in 0..tok.len() {
            if tok.as_bytes()[i] == b'.' {
                continue;
            }
            let mut b = tok.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).expect("ascii");
            assert!(verify(&t, &key(), NOW).is_err(), "byte {i} changed: {t}");
        }

        // Truncated / extended / missing signature.
        assert!(verify(&tok[..tok.len() - 1], &key(), NOW).is_err());
        assert!(verify(&format!("{tok}A"), &key(), NOW).is_err());
        assert!(verify(&format!("{}.{}.", parts[0], parts[1]), &key(), NOW).is_err());
        assert!(verify(&format!("{}.{}", parts[0], parts[1]), &key(), NOW).is_err());
        assert!(verify(&format!("{tok}.{}", parts[2]), &key(), NOW).is_err());
    }

    #[test]
    fn expiry_has_no_leeway() {
        let c = TokenClaims::auth("c", "r", NOW + 10, true);
        let tok = sign(&c, &key());
        assert_eq!(verify(&tok, &key(), NOW), Ok(c.clone()));
        assert_eq!(verify(&tok, &key(), NOW + 9), Ok(c));
        assert_eq!(verify(&tok, &key(), NOW + 10), Err(TokenError::Expired));
        assert_eq!(verify(&tok, &key(), NOW + 10_000), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_and_others_rejected() {
        let payload = serde_json::to_string(&auth_claims()).expect("ser");
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"HS384","typ":"JWT"}"#,
            r#"{"alg":"hs256","typ":"JWT"}"#,
            r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
        ] {
            // Even correctly HMAC-signed with the right key: header must say exactly HS256.
            let t = forge(header, &payload, &key());
            assert_eq!(
                verify(&t, &key(), NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
        // Classic alg=none with empty signature.
        let t = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        assert!(verify(&t, &key(), NOW).is_err());
        // Header without alg / not an object.
        for header in [r#"{"typ":"JWT"}"#, "[]", "null", r#"{"alg":256}"#] {
            let t = forge(header, &payload, &key());
            assert_eq!(
                verify(&t, &key(), NOW),
                Err(TokenError::Malformed),
                "{header}"
            );
        }
        // Missing typ is fine (only alg matters).
        let t = forge(r#"{"alg":"HS256"}"#, &payload, &key());
        assert_eq!(verify(&t, &key(), NOW), Ok(auth_claims()));
    }

    #[test]
    fn type_checks() {
        let file = TokenClaims::file("c", "r", NOW + 100);
        let tok = sign(&file, &key());
        assert_eq!(
            verify_as(&tok, &key(), NOW, TokenType::Auth),
            Err(TokenError::WrongType)
        );
        assert_eq!(verify_as(&tok, &key(), NOW, TokenType::File), Ok(file));

        // Well-signed but malformed claim sets are rejected as Malformed.
        for payload in [
            r#"{"collectionId":"","exp":1796169698,"id":"r","refreshable":true,"type":"auth"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"","refreshable":true,"type":"auth"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","type":"auth"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","refreshable":true,"type":"admin"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","refreshable":true}"#,
            r#"{"collectionId":"c","id":"r","refreshable":true,"type":"auth"}"#,
            r#"{"collectionId":"c","exp":"1796169698","id":"r","refreshable":true,"type":"auth"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","type":"verification"}"#,
            r#"{"collectionId":"c","email":"a@b.c","exp":1796169698,"id":"r","type":"emailChange"}"#,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","refreshable":true,"type":"file"}"#,
            r#"{"collectionId":1,"exp":1796169698,"id":"r","refreshable":true,"type":"auth"}"#,
            "[]",
            "null",
            "",
        ] {
            let t = forge(HEADER_JSON, payload, &key());
            assert_eq!(
                verify(&t, &key(), NOW),
                Err(TokenError::Malformed),
                "{payload}"
            );
            assert_eq!(decode_unverified(&t), None, "{payload}");
        }
        // Extra unknown claims are tolerated (they are covered by the signature anyway).
        let t = forge(
            HEADER_JSON,
            r#"{"collectionId":"c","exp":1796169698,"id":"r","refreshable":true,"type":"auth","x":1}"#,
            &key(),
        );
        assert!(verify(&t, &key(), NOW).is_ok());
    }

    #[test]
    fn size_limit() {
        let big = TokenClaims::auth(&"c".repeat(4000), "r", NOW + 100, true);
        let tok = sign(&big, &key());
        assert!(tok.len() > MAX_TOKEN_LEN);
        assert_eq!(decode_unverified(&tok), None);
        assert_eq!(verify(&tok, &key(), NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn garbage_never_panics() {
        let fixed = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "garbage.token.value",
            "Bearer x",
            "eyJ.eyJ.eyJ",
            "\u{0}\u{0}.\u{0}.\u{0}",
            "é.ü.ñ",
            "====.====.====",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.e30",
        ];
        for g in fixed {
            assert!(decode_unverified(g).is_none(), "{g:?}");
            assert!(verify(g, &key(), NOW).is_err(), "{g:?}");
        }
        // Deterministic random fuzz: random bytes, random base64url segments, and mutations of
        // a valid token. Nothing may panic, and nothing but the untouched token may verify.
        let valid = sign(&auth_claims(), &key());
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9);
        let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/";
        for i in 0..20_000 {
            let s: String = match i % 3 {
                0 => {
                    let n = rng.gen_range(0..64);
                    let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                1 => {
                    let n = rng.gen_range(0..120);
                    (0..n)
                        .map(|_| char::from(b64[rng.gen_range(0..b64.len())]))
                        .collect()
                }
                _ => {
                    let mut b = valid.clone().into_bytes();
                    for _ in 0..rng.gen_range(1..4) {
                        let at = rng.gen_range(0..b.len());
                        b[at] = b64[rng.gen_range(0..b64.len())];
                    }
                    String::from_utf8(b).unwrap_or_default()
                }
            };
            let _ = decode_unverified(&s);
            let _ = token_from_authorization(&s);
            if s != valid {
                assert!(verify(&s, &key(), NOW).is_err(), "{s:?} verified");
            }
        }
    }

    #[test]
    fn authorization_header_forms() {
        // Measured on PocketBase v0.40.6 (auth-refresh: 200 = token accepted).
        assert_eq!(token_from_authorization("eyJ.a.b"), Some("eyJ.a.b"));
        assert_eq!(token_from_authorization("Bearer eyJ.a.b"), Some("eyJ.a.b"));
        assert_eq!(token_from_authorization("bearer eyJ.a.b"), Some("eyJ.a.b"));
        assert_eq!(token_from_authorization("BEARER eyJ.a.b "), Some("eyJ.a.b"));
        assert_eq!(token_from_authorization("\teyJ.a.b\t"), Some("eyJ.a.b"));
        // Malformed: the remainder is not a token (→ guest after verification).
        assert_eq!(
            token_from_authorization("Bearer  eyJ.a.b"),
            Some(" eyJ.a.b")
        );
        assert_eq!(
            token_from_authorization("Bearer\teyJ.a.b"),
            Some("Bearer\teyJ.a.b")
        );
        assert_eq!(
            token_from_authorization("BearereyJ.a.b"),
            Some("BearereyJ.a.b")
        );
        assert_eq!(token_from_authorization(""), None);
        assert_eq!(token_from_authorization("Bearer "), Some("Bearer"));
        assert_eq!(token_from_authorization("   "), None);
        assert_eq!(token_from_authorization("Béarer x"), Some("Béarer x"));
    }

    #[test]
    fn random_strings() {
        let check = |s: &str, len: usize, alphabet: &[u8]| {
            assert_eq!(s.len(), len);
            assert!(s.bytes().all(|b| alphabet.contains(&b)), "{s}");
        };
        check(&new_token_key(), 50, ALPHANUMERIC);
        check(&new_collection_secret(), 50, ALPHANUMERIC);
        check(&new_record_id(), 15, LOWER_ALPHANUMERIC);
        check(&new_realtime_client_id(), 40, ALPHANUMERIC);
        assert_eq!(random_string(10, b""), "");
        assert_eq!(random_string(0, ALPHANUMERIC), "");
        assert_eq!(random_string(5, b"x"), "xxxxx");
        assert_ne!(new_token_key(), new_token_key());
        // Every symbol of the alphabet shows up (coarse uniformity check).
        let many = random_string(20_000, LOWER_ALPHANUMERIC);
        for &c in LOWER_ALPHANUMERIC {
            let n = many.bytes().filter(|&b| b == c).count();
            assert!((300..900).contains(&n), "{} appeared {n} times", c as char);
        }
    }
}
