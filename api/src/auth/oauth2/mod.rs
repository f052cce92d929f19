//! OAuth2 sign-in, as PocketBase v0.40.6 does it (measured on the reference):
//!
//! - [`providers`]: the named providers (endpoints, scopes, PKCE default, user mapping).
//! - this module: a collection's `oauth2` option parsed into [`Config`]s, the `auth-methods`
//!   entries (a fresh `state`, PKCE verifier and S256 challenge per call, the authorization
//!   URL ending in `&redirect_uri=` for the SDK to complete), and the collections API's
//!   handling of the option ([`public_option`] drops `clientSecret`, [`merge_option`] keeps a
//!   stored secret when an update sends none and checks names and secrets).
//! - [`client`]: the code exchange at the token endpoint and the user fetch (userinfo, or the
//!   `id_token` verified against the provider's JWKS).
//! - [`link`]: finding, creating or linking the auth record through `_externalAuths`, as one
//!   commit.
//!
//! Invariant: no API answer contains a `clientSecret`.

pub mod avatar;
pub mod client;
pub mod link;
pub mod providers;

use crate::auth::token;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Length of the `state` in `auth-methods` (the reference's).
pub const STATE_LEN: usize = 30;
/// Length of the PKCE code verifier (the reference's).
pub const CODE_VERIFIER_LEN: usize = 43;

/// One configured provider of a collection.
#[derive(Debug, Clone)]
pub struct Config {
    /// The named provider.
    pub provider: providers::Provider,
    /// `clientId`.
    pub client_id: String,
    /// `clientSecret` (never leaves the server).
    pub client_secret: String,
    /// Authorization endpoint (config, else the provider's).
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// User endpoint ("" = the `id_token` claims).
    pub user_info_url: String,
    /// Display name.
    pub display_name: String,
    /// PKCE on.
    pub pkce: bool,
    /// `extra` (`jwksURL`, `issuers` for the oidc providers).
    pub extra: Map<String, Value>,
}

impl Config {
    /// The `id_token` check for this provider: JWKS URL and accepted issuers (empty = any).
    pub fn id_token_check(&self) -> Option<(String, Vec<String>)> {
        if let Some((jwks, issuer)) = self.provider.id_token {
            return Some((jwks.to_string(), vec![issuer.to_string()]));
        }
        let jwks = self
            .extra
            .get("jwksURL")
            .and_then(Value::as_str)
            .unwrap_or("");
        if jwks.is_empty() {
            return None;
        }
        let issuers = self
            .extra
            .get("issuers")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some((jwks.to_string(), issuers))
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn or(config: String, default: &str) -> String {
    if config.is_empty() {
        default.to_string()
    } else {
        config
    }
}

/// Parses one provider entry (None for an unknown name).
pub fn parse_config(entry: &Value) -> Option<Config> {
    let provider = providers::find(&text(entry, "name"))?;
    Some(Config {
        client_id: text(entry, "clientId"),
        client_secret: text(entry, "clientSecret"),
        auth_url: or(text(entry, "authURL"), provider.auth_url),
        token_url: or(text(entry, "tokenURL"), provider.token_url),
        user_info_url: or(text(entry, "userInfoURL"), provider.user_info_url),
        display_name: or(text(entry, "displayName"), provider.display_name),
        pkce: entry
            .get("pkce")
            .and_then(Value::as_bool)
            .unwrap_or(provider.pkce),
        extra: entry
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        provider,
    })
}

/// Whether the collection's `oauth2.enabled` is on.
pub fn enabled(option: &Value) -> bool {
    option
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The configured providers of an `oauth2` option, in order (unknown names skipped).
pub fn configs(option: &Value) -> Vec<Config> {
    option
        .get("providers")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(parse_config).collect())
        .unwrap_or_default()
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space is `+`, the rest `%XX`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The S256 challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// One `auth-methods` provider entry (fresh state and verifier).
pub fn auth_method_entry(config: &Config) -> Value {
    let state = token::random_string(STATE_LEN, token::ALPHANUMERIC);
    let verifier = token::random_string(CODE_VERIFIER_LEN, token::ALPHANUMERIC);
    let challenge = code_challenge(&verifier);
    let mut params: Vec<(&str, String)> = vec![
        ("client_id", config.client_id.clone()),
        ("response_type", "code".into()),
        ("state", state.clone()),
    ];
    if config.pkce {
        params.push(("code_challenge", challenge.clone()));
        params.push(("code_challenge_method", "S256".into()));
    }
    if !config.provider.scopes.is_empty() {
        params.push(("scope", config.provider.scopes.into()));
    }
    for (key, value) in config.provider.auth_params {
        params.push((key, (*value).to_string()));
    }
    params.sort_by(|a, b| a.0.cmp(b.0));
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    let separator = if config.auth_url.contains('?') {
        "&"
    } else {
        "?"
    };
    let url = format!(
        "{}{separator}{}&redirect_uri=",
        config.auth_url,
        query.join("&")
    );
    let (verifier, challenge, method) = if config.pkce {
        (verifier, challenge, "S256")
    } else {
        (String::new(), String::new(), "")
    };
    json!({
        "name": config.provider.name,
        "displayName": config.display_name,
        "logo": "",
        "state": state,
        "authURL": url,
        "authUrl": url,
        "codeVerifier": verifier,
        "codeChallenge": challenge,
        "codeChallengeMethod": method,
    })
}

/// The `oauth2` part of `auth-methods` and the legacy `authProviders` list.
pub fn auth_methods(option: &Value) -> (Value, Value) {
    let on = enabled(option);
    let entries: Vec<Value> = if on {
        configs(option).iter().map(auth_method_entry).collect()
    } else {
        Vec::new()
    };
    (
        json!({"providers": entries, "enabled": on}),
        Value::Array(entries),
    )
}

/// The keys of a provider entry in API output, in the reference's order (no `clientSecret`).
const PUBLIC_KEYS: [&str; 8] = [
    "pkce",
    "name",
    "clientId",
    "authURL",
    "tokenURL",
    "userInfoURL",
    "displayName",
    "extra",
];

/// The `oauth2` option as the collections API shows it: every provider without its
/// `clientSecret`.
pub fn public_option(option: &Value) -> Value {
    let mut out = option.clone();
    // PocketBase stores an empty list as `null` (an imported data dir has it so); the API
    // always shows a list.
    if let Some(map) = out.as_object_mut() {
        if !map.get("providers").is_some_and(Value::is_array) {
            map.insert("providers".into(), json!([]));
        }
    }
    if let Some(list) = out.get_mut("providers").and_then(Value::as_array_mut) {
        for entry in list.iter_mut() {
            let mut shown = Map::new();
            for key in PUBLIC_KEYS {
                let value = entry.get(key).cloned().unwrap_or(match key {
                    "pkce" => Value::Null,
                    "extra" => json!({}),
                    _ => json!(""),
                });
                shown.insert(key.to_string(), value);
            }
            *entry = Value::Object(shown);
        }
    }
    out
}

/// Merges an `oauth2` option sent by a collection create/update over the stored one: a
/// provider sent without `clientSecret` (or with an empty one) keeps the stored secret of the
/// provider with the same name. Returns the reference's field errors
/// (`{"providers": {"<i>": {...}}}`) for an unknown name or a missing secret.
pub fn merge_option(old: Option<&Value>, new: &mut Value) -> Option<Value> {
    let old_secrets: Map<String, Value> = old
        .and_then(|o| o.get("providers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| (text(p, "name"), json!(text(p, "clientSecret"))))
                .collect()
        })
        .unwrap_or_default();
    let mut errors = Map::new();
    if let Some(list) = new.get_mut("providers").and_then(Value::as_array_mut) {
        for (index, entry) in list.iter_mut().enumerate() {
            let name = text(entry, "name");
            let mut entry_errors = Map::new();
            if providers::find(&name).is_none() {
                entry_errors.insert(
                    "name".into(),
                    json!({"code": "validation_missing_provider",
                        "message": format!("Invalid or missing provider with name {name}."),
                        "params": {"name": name}}),
                );
            }
            if text(entry, "clientSecret").is_empty() {
                match old_secrets.get(&name).and_then(Value::as_str) {
                    Some(secret) if !secret.is_empty() => {
                        if let Some(map) = entry.as_object_mut() {
                            map.insert("clientSecret".into(), json!(secret));
                        }
                    }
                    _ => {
                        entry_errors.insert(
                            "clientSecret".into(),
                            json!({"code": "validation_required", "message": "Cannot be blank."}),
                        );
                    }
                }
            }
            if text(entry, "clientId").is_empty() {
                entry_errors.insert(
                    "clientId".into(),
                    json!({"code": "validation_required", "message": "Cannot be blank."}),
                );
            }
            if !entry_errors.is_empty() {
                errors.insert(index.to_string(), Value::Object(entry_errors));
            }
        }
    }
    (!errors.is_empty()).then(|| json!({ "providers": errors }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_the_references_s256() {
        // A verifier/challenge pair from the reference's auth-methods answer.
        assert_eq!(
            code_challenge("15VSp7MFTz8YTwTTjJuCLXsJwJALqoqPS9Uf0uenOyk"),
            "5MgjaLrPh-bz3VqY6hs5YMrHl2I6spaZ5OqSAWIpMKw"
        );
    }

    #[test]
    fn auth_url_is_sorted_and_ends_with_an_empty_redirect() {
        let config = parse_config(&json!({"name": "github", "clientId": "gid"})).unwrap();
        let entry = auth_method_entry(&config);
        let url = entry["authURL"].as_str().unwrap();
        assert!(url
            .starts_with("https://github.com/login/oauth/authorize?client_id=gid&code_challenge="));
        assert!(url.contains(
            "&code_challenge_method=S256&response_type=code&scope=read%3Auser+user%3Aemail&state="
        ));
        assert!(url.ends_with("&redirect_uri="));
        assert_eq!(entry["state"].as_str().unwrap().len(), STATE_LEN);
        assert_eq!(
            entry["codeChallenge"],
            json!(code_challenge(entry["codeVerifier"].as_str().unwrap()))
        );
    }

    #[test]
    fn merge_keeps_the_stored_secret_and_refuses_unknown_names() {
        let old = json!({"providers": [{"name": "oidc", "clientId": "c", "clientSecret": "s"}]});
        let mut new = json!({"providers": [{"name": "oidc", "clientId": "c"}]});
        assert!(merge_option(Some(&old), &mut new).is_none());
        assert_eq!(new["providers"][0]["clientSecret"], "s");
        let mut bad = json!({"providers": [{"name": "x", "clientId": "c", "clientSecret": "s"}, {"name": "github", "clientId": "c"}]});
        let errors = merge_option(Some(&old), &mut bad).unwrap();
        assert_eq!(
            errors["providers"]["0"]["name"]["code"],
            "validation_missing_provider"
        );
        assert_eq!(
            errors["providers"]["1"]["clientSecret"]["code"],
            "validation_required"
        );
        assert!(public_option(&old)["providers"][0]
            .get("clientSecret")
            .is_none());
    }
}
