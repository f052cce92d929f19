//! The provider side of `auth-with-oauth2`: exchanging the authorization code for tokens and
//! fetching the provider's user.
//!
//! - Token request as the reference sends it (measured with a logging provider): a form POST
//!   of `code`, `code_verifier` (PKCE only), `grant_type=authorization_code` and
//!   `redirect_uri`, client credentials in HTTP Basic auth; a provider that refuses Basic
//!   auth gets a second try with `client_id`/`client_secret` in the form (Go's `oauth2`
//!   auto-detection). The answer may be JSON or a form (GitHub's default).
//! - The user: `GET userInfoURL` with the bearer token; without a user endpoint the
//!   `id_token` claims. Whenever the provider has a JWKS to check against (`extra.jwksURL`
//!   for the oidc providers, Apple's keys for `apple`) the `id_token` must verify: signature
//!   by the key its `kid` names, `aud` = the client id, `iss` among the configured issuers,
//!   `exp`/`nbf` with [`LEEWAY_SECS`] of leeway, and `nonce` absent (the flow sends none).
//!
//! Invariants: every outgoing request has [`HTTP_TIMEOUT`]; provider bodies are read up to
//! [`BODY_MAX`] bytes; the errors carry no provider text to the client (the handler maps
//! them to the reference's `Failed to fetch OAuth2 token.` / `... user.`), only to the log.

use super::providers::{map_user, User};
use super::Config;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};
use std::time::Duration;

/// Timeout of each request to a provider (the reference's 30 s context).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest provider answer read.
pub const BODY_MAX: usize = 1 << 20;
/// Clock leeway for `exp`/`nbf`/`iat` of an `id_token`.
pub const LEEWAY_SECS: u64 = 60;

/// The tokens of a successful exchange.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// `access_token`.
    pub access_token: String,
    /// `refresh_token`.
    pub refresh_token: String,
    /// `expires_in` seconds, when given.
    pub expires_in: Option<i64>,
    /// `id_token`, when given.
    pub id_token: String,
}

/// The OAuth2 user with the provider's raw JSON.
#[derive(Debug, Clone)]
pub struct FetchedUser {
    /// The mapped user.
    pub user: User,
    /// The provider's JSON (`meta.rawUser`).
    pub raw: Value,
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

async fn read_body(response: reqwest::Response) -> Result<(u16, Vec<u8>), String> {
    let status = response.status().as_u16();
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > BODY_MAX {
            return Err("provider answer too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

fn parse_token_answer(body: &[u8]) -> Result<Tokens, String> {
    let map: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => url_form(body),
    };
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let access_token = text("access_token");
    if access_token.is_empty() {
        return Err(format!("no access_token (error: {})", text("error")));
    }
    Ok(Tokens {
        access_token,
        refresh_token: text("refresh_token"),
        expires_in: text("expires_in").parse().ok(),
        id_token: text("id_token"),
    })
}

fn url_form(body: &[u8]) -> Map<String, Value> {
    let text = String::from_utf8_lossy(body);
    let mut out = Map::new();
    for pair in text.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            crate::realtime::topic::percent_decode(&s.replace('+', " ")).unwrap_or_default()
        };
        out.insert(decode(key), Value::String(decode(value)));
    }
    out
}

/// Exchanges the authorization code at the token endpoint.
pub async fn exchange(
    config: &Config,
    code: &str,
    code_verifier: &str,
    redirect_url: &str,
) -> Result<Tokens, String> {
    let client = http()?;
    let mut form: Vec<(&str, &str)> = vec![("code", code)];
    if config.pkce {
        form.push(("code_verifier", code_verifier));
    }
    form.push(("grant_type", "authorization_code"));
    form.push(("redirect_uri", redirect_url));
    let basic = client
        .post(&config.token_url)
        .header("accept", "application/json")
        .basic_auth(
            super::query_escape(&config.client_id),
            Some(super::query_escape(&config.client_secret)),
        )
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let (status, body) = read_body(basic).await?;
    if (200..300).contains(&status) {
        return parse_token_answer(&body);
    }
    // Go's oauth2 auto-detection: retry with the credentials in the form.
    let mut in_params = form.clone();
    in_params.push(("client_id", &config.client_id));
    in_params.push(("client_secret", &config.client_secret));
    let retry = client
        .post(&config.token_url)
        .header("accept", "application/json")
        .form(&in_params)
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let (status, body) = read_body(retry).await?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "token endpoint answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    parse_token_answer(&body)
}

/// Fetches the provider's user for the tokens.
pub async fn fetch_user(config: &Config, tokens: &Tokens) -> Result<FetchedUser, String> {
    let check = config.id_token_check();
    let mut claims = None;
    if let Some((jwks_url, issuers)) = &check {
        if !tokens.id_token.is_empty() {
            claims = Some(verify_id_token(config, &tokens.id_token, jwks_url, issuers).await?);
        } else if config.user_info_url.is_empty() {
            return Err("the provider answered no id_token".into());
        }
    }
    let raw = if !config.user_info_url.is_empty() {
        let response = http()?
            .get(&config.user_info_url)
            .bearer_auth(&tokens.access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("user request: {e}"))?;
        let (status, body) = read_body(response).await?;
        if !(200..300).contains(&status) {
            return Err(format!("user endpoint answered {status}"));
        }
        let raw: Value = serde_json::from_slice(&body).map_err(|e| format!("user answer: {e}"))?;
        if let (Some(claims), Some(sub)) = (&claims, raw.get("sub")) {
            // OIDC core 5.3.2: the userinfo `sub` must be the id_token's.
            if claims.get("sub") != Some(sub) {
                return Err("userinfo sub differs from the id_token's".into());
            }
        }
        raw
    } else if let Some(claims) = claims {
        claims
    } else if !tokens.id_token.is_empty() {
        // No JWKS configured: the claims of a token received directly from the token
        // endpoint (as the reference, which trusts the TLS channel).
        decode_claims(&tokens.id_token)?
    } else {
        return Err("no user endpoint and no id_token".into());
    };
    let user = map_user(config.provider.mapping, &raw);
    if user.id.is_empty() {
        return Err("the provider's user has no id".into());
    }
    Ok(FetchedUser { user, raw })
}

fn decode_claims(id_token: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let payload = id_token.split('.').nth(1).ok_or("malformed id_token")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("id_token payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("id_token payload: {e}"))
}

/// Verifies an `id_token` against the JWKS at `jwks_url`; returns its claims.
pub async fn verify_id_token(
    config: &Config,
    id_token: &str,
    jwks_url: &str,
    issuers: &[String],
) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| format!("id_token: {e}"))?;
    let response = http()?
        .get(jwks_url)
        .send()
        .await
        .map_err(|e| format!("jwks request: {e}"))?;
    let (status, body) = read_body(response).await?;
    if !(200..300).contains(&status) {
        return Err(format!("jwks endpoint answered {status}"));
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("jwks: {e}"))?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or("no JWKS key for the id_token's kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.set_audience(&[config.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    if !issuers.is_empty() {
        validation.set_issuer(issuers);
    }
    let data = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .map_err(|e| format!("id_token: {e}"))?;
    if data.claims.get("nonce").is_some_and(|n| !n.is_null()) {
        return Err("id_token carries a nonce the flow never sent".into());
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_may_be_forms() {
        let tokens = parse_token_answer(b"access_token=a%2Bb&token_type=bearer&scope=").unwrap();
        assert_eq!(tokens.access_token, "a+b");
        assert!(parse_token_answer(br#"{"error":"bad_verification_code"}"#).is_err());
        let tokens =
            parse_token_answer(br#"{"access_token":"x","expires_in":3600,"id_token":"i"}"#)
                .unwrap();
        assert_eq!(
            (tokens.expires_in, tokens.id_token.as_str()),
            (Some(3600), "i")
        );
    }
}
