//! A small OpenID provider for the OAuth2 tests, on a loopback port: `/token` (checks the
//! client's Basic credentials, the code and the PKCE verifier of the code's S256 challenge,
//! and answers an access token and an RS256 `id_token`), `/userinfo` (bearer), `/jwks`
//! (the public key of `good.pem`, kid `k1`) and `/avatar.png`. Each code carries the claims
//! and the way its `id_token` is made (right key, another key, another audience/issuer,
//! expired), so a test decides per sign-in what the provider does. The tokens it signs are
//! real RS256 JWTs made with `jsonwebtoken`; the server verifies them against `/jwks`.

#![allow(dead_code)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The client id the provider knows.
pub const CLIENT_ID: &str = "pocketlog-test";
/// Its secret.
pub const CLIENT_SECRET: &str = "s3cret-value";

const GOOD_PEM: &[u8] = include_bytes!("good.pem");
const EVIL_PEM: &[u8] = include_bytes!("evil.pem");
const GOOD_N: &str = include_str!("good.n");
/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// How the `id_token` of a code is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdToken {
    /// Signed with the published key, right audience and issuer.
    Good,
    /// Signed with a key the JWKS does not have (same kid).
    BadSignature,
    /// Audience is another client.
    WrongAudience,
    /// Issuer is another one.
    WrongIssuer,
    /// Expired an hour ago.
    Expired,
}

#[derive(Clone)]
struct Grant {
    challenge: Option<String>,
    claims: Value,
    id_token: IdToken,
}

#[derive(Default)]
struct Inner {
    grants: HashMap<String, Grant>,
    access: HashMap<String, Value>,
    token_requests: usize,
}

/// The running provider.
#[derive(Clone)]
pub struct Provider {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Provider {
    /// Starts the provider.
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let provider = Provider {
            base,
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/jwks", get(jwks))
            .route(
                "/avatar.png",
                get(|| async { ([("content-type", "image/png")], PNG) }),
            )
            .with_state(provider.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        provider
    }

    /// The issuer (`iss` of good tokens).
    pub fn issuer(&self) -> String {
        self.base.clone()
    }

    /// Registers an authorization code for `claims` (as the provider's login page would after
    /// the user signed in), bound to the PKCE verifier `verifier` when given.
    pub fn grant(&self, code: &str, verifier: Option<&str>, claims: Value, id_token: IdToken) {
        self.inner.lock().expect("lock").grants.insert(
            code.to_string(),
            Grant {
                challenge: verifier.map(s256),
                claims,
                id_token,
            },
        );
    }

    /// Token requests received.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().expect("lock").token_requests
    }

    /// The provider config of a collection's `oauth2.providers` entry.
    pub fn config(&self, name: &str, with_jwks: bool, with_userinfo: bool) -> Value {
        json!({
            "name": name,
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "authURL": format!("{}/auth", self.base),
            "tokenURL": format!("{}/token", self.base),
            "userInfoURL": if with_userinfo { format!("{}/userinfo", self.base) } else { String::new() },
            "displayName": "Test OIDC",
            "pkce": true,
            "extra": if with_jwks {
                json!({"jwksURL": format!("{}/jwks", self.base), "issuers": [self.issuer()]})
            } else {
                json!({})
            },
        })
    }

    fn sign(&self, claims: &Value, how: IdToken) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut body = claims.clone();
        body["iss"] = json!(if how == IdToken::WrongIssuer {
            "http://evil.example".to_string()
        } else {
            self.issuer()
        });
        body["aud"] = json!(if how == IdToken::WrongAudience {
            "another-client"
        } else {
            CLIENT_ID
        });
        body["iat"] = json!(now);
        body["exp"] = json!(if how == IdToken::Expired {
            now - 3600
        } else {
            now + 600
        });
        let pem = if how == IdToken::BadSignature {
            EVIL_PEM
        } else {
            GOOD_PEM
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            &body,
            &EncodingKey::from_rsa_pem(pem).expect("pem"),
        )
        .expect("sign")
    }
}

async fn token(
    State(provider): State<Provider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let mut inner = provider.inner.lock().expect("lock");
    inner.token_requests += 1;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET));
    let denied =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    if !authorized {
        return denied("invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return denied("unsupported_grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // A code is used once.
    let Some(grant) = inner.grants.remove(&code) else {
        return denied("invalid_grant");
    };
    if let Some(challenge) = &grant.challenge {
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if &s256(&verifier) != challenge {
            return denied("invalid_grant");
        }
    }
    let access = format!("at-{code}");
    inner.access.insert(access.clone(), grant.claims.clone());
    drop(inner);
    let id_token = provider.sign(&grant.claims, grant.id_token);
    Json(
        json!({"access_token": access, "refresh_token": format!("rt-{code}"),
        "expires_in": 3600, "token_type": "Bearer", "id_token": id_token}),
    )
    .into_response()
}

async fn userinfo(State(provider): State<Provider>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match provider.inner.lock().expect("lock").access.get(token) {
        Some(claims) => Json(claims.clone()).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn jwks() -> Json<Value> {
    Json(
        json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
        "n": GOOD_N.trim(), "e": "AQAB"}]}),
    )
}
