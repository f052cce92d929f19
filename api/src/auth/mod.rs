//! Authentication primitives for auth collections: password hashing and PocketBase-compatible
//! JWTs. Pure functions only — no I/O, no database, no HTTP; the API layer wires them up.
//!
//! - [`password`]: argon2id (m=19456 KiB, t=2, p=1) PHC hashes — [`hash_password`],
//!   [`verify_password`], [`dummy_verify`] (timing-equalizer for unknown identities).
//! - [`token`]: HS256 JWTs exactly as PocketBase 0.40.6 issues them
//!   (`docs/wire/auth.md`) — [`sign`], [`decode_unverified`], [`verify`],
//!   [`verify_as`], [`signing_key`] (`record.tokenKey + collection.<kind>Token.secret`), and the
//!   random generators for `tokenKey`s, collection secrets, record ids and realtime client ids.
//!
//! Token check in a request (`docs/wire/auth.md` "Signing and checking"): take the token
//! from `Authorization` ([`token_from_authorization`]) → [`decode_unverified`] → require the
//! endpoint's type → load the record by `collectionId`/`id` from an auth collection →
//! [`verify`] with [`signing_key`]`(record.tokenKey, collection.authToken.secret)`; any
//! failure ⇒ guest.

pub mod email_change;
pub mod mfa;
pub mod oauth2;
pub mod origins;
pub mod otp;
pub mod password;
pub mod token;

pub use password::{
    dummy_verify, hash_password, is_legacy_hash, try_hash_password, verify_password, HashError,
};
pub use token::{
    decode_unverified, new_collection_secret, new_realtime_client_id, new_record_id, new_token_key,
    random_string, sign, signing_key, token_from_authorization, verify, verify_as, TokenClaims,
    TokenError, TokenType, ALPHANUMERIC, LOWER_ALPHANUMERIC, MAX_TOKEN_LEN,
};
