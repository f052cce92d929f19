//! OAuth2 through the HTTP API against a local OpenID provider (`oauth2_support`): the
//! `auth-methods` entries, the code exchange with PKCE, the `id_token` checked against the
//! provider's JWKS, creating and linking records through `_externalAuths`, `mappedFields`
//! (the avatar downloaded into the file field), the answer's `meta`, MFA, the collections
//! API never showing `clientSecret`, and the bad inputs with the reference's answers
//! (measured on PocketBase v0.40.6) committing nothing.

#![allow(clippy::unwrap_used)]

mod common;
mod oauth2_support;

use common::TestServer;
use oauth2_support::{IdToken, Provider};
use serde_json::{json, Value};

async fn setup(with_jwks: bool, with_userinfo: bool) -> (TestServer, Provider) {
    let server = common::start().await;
    let provider = Provider::start().await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"oauth2": {"enabled": true,
                "mappedFields": {"id": "", "name": "name", "username": "", "avatarURL": "avatar"},
                "providers": [provider.config("oidc", with_jwks, with_userinfo)]}}),
            Some(&server.admin),
            200,
        )
        .await;
    (server, provider)
}

fn claims(sub: &str, email: &str) -> Value {
    json!({"sub": sub, "email": email, "email_verified": true, "name": "Ada Lovelace",
        "preferred_username": "ada"})
}

async fn sign_in(server: &TestServer, code: &str, verifier: &str) -> common::Reply {
    server
        .send(
            "POST",
            "/api/collections/users/auth-with-oauth2",
            Some(
                &json!({"provider": "oidc", "code": code, "codeVerifier": verifier,
                    "redirectURL": format!("{}/api/oauth2-redirect", server.base)})
                .to_string(),
            ),
            None,
        )
        .await
}

async fn count(server: &TestServer, collection: &str) -> u64 {
    let list = server
        .json(
            "GET",
            &format!("/api/collections/{collection}/records?perPage=1"),
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    list["totalItems"].as_u64().expect("totalItems")
}

#[tokio::test]
async fn oauth2_auth_methods_and_collections_never_show_the_secret() {
    let (server, _provider) = setup(true, false).await;
    let methods = server
        .json(
            "GET",
            "/api/collections/users/auth-methods",
            Value::Null,
            None,
            200,
        )
        .await;
    assert_eq!(methods["oauth2"]["enabled"], true);
    let entry = &methods["oauth2"]["providers"][0];
    assert_eq!(entry["name"], "oidc");
    assert_eq!(entry["displayName"], "Test OIDC");
    assert_eq!(entry["codeChallengeMethod"], "S256");
    let state = entry["state"].as_str().unwrap();
    assert_eq!(state.len(), 30);
    let verifier = entry["codeVerifier"].as_str().unwrap();
    assert_eq!(
        entry["codeChallenge"].as_str().unwrap(),
        api::auth::oauth2::code_challenge(verifier)
    );
    let url = entry["authURL"].as_str().unwrap();
    assert!(
        url.contains("/auth?client_id=pocketlog-test&code_challenge="),
        "{url}"
    );
    assert!(url.contains("&scope=openid+email+profile&state="), "{url}");
    assert!(url.ends_with("&redirect_uri="), "{url}");
    assert_eq!(entry["authUrl"], entry["authURL"]);
    assert_eq!(methods["authProviders"][0]["state"], entry["state"]);
    // A second call gives a fresh state and verifier.
    let again = server
        .json(
            "GET",
            "/api/collections/users/auth-methods",
            Value::Null,
            None,
            200,
        )
        .await;
    assert_ne!(again["oauth2"]["providers"][0]["state"], entry["state"]);

    for path in ["/api/collections/users", "/api/collections"] {
        let reply = server.send("GET", path, None, Some(&server.admin)).await;
        assert_eq!(reply.status, 200);
        assert!(
            !reply.text.contains("clientSecret"),
            "{path}: {}",
            reply.text
        );
        assert!(!reply.text.contains(oauth2_support::CLIENT_SECRET));
    }
    let view = server
        .json(
            "GET",
            "/api/collections/users",
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    let shown = &view["oauth2"]["providers"][0];
    assert_eq!(
        shown.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "pkce",
            "name",
            "clientId",
            "authURL",
            "tokenURL",
            "userInfoURL",
            "displayName",
            "extra"
        ]
    );

    // Unknown provider and a new provider without a secret: the reference's field errors.
    let reply = server
        .send(
            "PATCH",
            "/api/collections/users",
            Some(&json!({"oauth2": {"enabled": true, "providers": [{"name": "nope", "clientId": "c", "clientSecret": "s"}]}}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json["data"]["oauth2"]["providers"]["0"]["name"],
        json!({"code": "validation_missing_provider", "message": "Invalid or missing provider with name nope.", "params": {"name": "nope"}})
    );
    let reply = server
        .send(
            "PATCH",
            "/api/collections/users",
            Some(&json!({"oauth2": {"enabled": true, "providers": [{"name": "github", "clientId": "c"}]}}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json["data"]["oauth2"]["providers"]["0"]["clientSecret"]["code"],
        "validation_required"
    );
}

#[tokio::test]
async fn oauth2_sign_in_creates_links_and_signs_in_again() {
    let (server, provider) = setup(true, false).await;
    // The config as the dashboard sends it back (no secret): the stored secret stays.
    let view = server
        .json(
            "GET",
            "/api/collections/users",
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"oauth2": view["oauth2"].clone()}),
            Some(&server.admin),
            200,
        )
        .await;
    let mut user = claims("sub-1", "ada@example.com");
    user["picture"] = json!(format!("{}/avatar.png", provider.base));
    provider.grant("code-1", Some("verifier-1"), user.clone(), IdToken::Good);
    let reply = sign_in(&server, "code-1", "verifier-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    let record = &body["record"];
    assert_eq!(record["email"], "ada@example.com");
    assert_eq!(record["verified"], true);
    assert_eq!(record["name"], "Ada Lovelace");
    let avatar = record["avatar"].as_str().unwrap();
    assert!(
        avatar.starts_with("avatar") && avatar.ends_with(".png"),
        "{avatar}"
    );
    let meta = &body["meta"];
    assert_eq!(meta["id"], "sub-1");
    assert_eq!(meta["email"], "ada@example.com");
    assert_eq!(meta["username"], "ada");
    assert_eq!(meta["isNew"], true);
    assert_eq!(meta["accessToken"], "at-code-1");
    assert_eq!(meta["refreshToken"], "rt-code-1");
    assert_eq!(meta["rawUser"]["sub"], "sub-1");
    assert_eq!(meta["avatarURL"], meta["avatarUrl"]);
    assert!(meta["expiry"].as_str().unwrap().ends_with('Z'));
    // The token works.
    let token = body["token"].as_str().unwrap();
    server
        .json(
            "POST",
            "/api/collections/users/auth-refresh",
            Value::Null,
            Some(token),
            200,
        )
        .await;
    // The avatar file is served.
    let file = server
        .send(
            "GET",
            &format!(
                "/api/files/users/{}/{avatar}",
                record["id"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(file.status, 200);
    let links = server
        .json(
            "GET",
            "/api/collections/_externalAuths/records",
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(links["totalItems"], 1);
    assert_eq!(links["items"][0]["provider"], "oidc");
    assert_eq!(links["items"][0]["providerId"], "sub-1");
    assert_eq!(links["items"][0]["recordRef"], record["id"]);

    // Signing in again: the same record, not new, no second link.
    provider.grant("code-2", Some("verifier-2"), user, IdToken::Good);
    let again = sign_in(&server, "code-2", "verifier-2").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["record"]["id"], record["id"]);
    assert_eq!(again.json["meta"]["isNew"], false);
    assert_eq!(count(&server, "_externalAuths").await, 1);
    assert_eq!(count(&server, "users").await, 1);
}

#[tokio::test]
async fn oauth2_links_an_existing_unverified_record_and_resets_its_password() {
    let (server, provider) = setup(false, true).await;
    let (id, _token) = server.user("grace@example.com", "oldpassword1").await;
    provider.grant(
        "c",
        Some("v"),
        claims("sub-g", "grace@example.com"),
        IdToken::Good,
    );
    let reply = sign_in(&server, "c", "v").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["record"]["id"], json!(id));
    assert_eq!(reply.json["record"]["verified"], true);
    assert_eq!(reply.json["meta"]["isNew"], false);
    // Whoever registered the address first lost the password.
    let old = server
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(&json!({"identity": "grace@example.com", "password": "oldpassword1"}).to_string()),
            None,
        )
        .await;
    assert_eq!(old.status, 400);
    assert_eq!(count(&server, "_externalAuths").await, 1);
}

#[tokio::test]
async fn oauth2_with_mfa_answers_an_mfa_id() {
    let (server, provider) = setup(true, false).await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"mfa": {"enabled": true}}),
            Some(&server.admin),
            200,
        )
        .await;
    provider.grant(
        "m",
        Some("v"),
        claims("sub-m", "m@example.com"),
        IdToken::Good,
    );
    let reply = sign_in(&server, "m", "v").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json.as_object().unwrap().len(), 1);
    assert_eq!(reply.json["mfaId"].as_str().unwrap().len(), 15);
}

#[tokio::test]
async fn oauth2_bad_inputs_answer_like_the_reference_and_commit_nothing() {
    let (server, provider) = setup(true, false).await;
    let post = |body: Value| {
        let server = &server;
        async move {
            server
                .send(
                    "POST",
                    "/api/collections/users/auth-with-oauth2",
                    Some(&body.to_string()),
                    None,
                )
                .await
        }
    };
    let reply = post(json!({})).await;
    assert_eq!(
        reply.json,
        json!({"data": {"code": {"code": "validation_required", "message": "Cannot be blank."},
            "provider": {"code": "validation_required", "message": "Cannot be blank."}},
            "message": "An error occurred while loading the submitted data.", "status": 400})
    );
    let reply = post(json!({"provider": "nope", "code": "x"})).await;
    assert_eq!(
        reply.json["data"]["provider"],
        json!({"code": "validation_invalid_provider", "message": "Provider with name nope is missing or is not enabled.", "params": {"name": "nope"}})
    );
    let reply = post(json!({"provider": "oidc", "code": "x", "createData": "bad"})).await;
    assert_eq!(
        reply.json,
        json!({"data": {}, "message": "An error occurred while loading the submitted data.", "status": 400})
    );
    let token_failed =
        json!({"data": {}, "message": "Failed to fetch OAuth2 token.", "status": 400});
    let user_failed = json!({"data": {}, "message": "Failed to fetch OAuth2 user.", "status": 400});
    // A code the provider never issued.
    assert_eq!(
        post(json!({"provider": "oidc", "code": "unknown", "codeVerifier": "v"}))
            .await
            .json,
        token_failed
    );
    // The PKCE verifier does not match the challenge.
    provider.grant(
        "pk",
        Some("right"),
        claims("s", "s@example.com"),
        IdToken::Good,
    );
    assert_eq!(
        post(json!({"provider": "oidc", "code": "pk", "codeVerifier": "wrong"}))
            .await
            .json,
        token_failed
    );
    // id_tokens that must not verify.
    for (code, how) in [
        ("sig", IdToken::BadSignature),
        ("aud", IdToken::WrongAudience),
        ("iss", IdToken::WrongIssuer),
        ("exp", IdToken::Expired),
    ] {
        provider.grant(code, Some("v"), claims("s", "s@example.com"), how);
        let reply = post(json!({"provider": "oidc", "code": code, "codeVerifier": "v"})).await;
        assert_eq!(reply.json, user_failed, "{how:?}");
    }
    assert_eq!(count(&server, "users").await, 0);
    assert_eq!(count(&server, "_externalAuths").await, 0);

    // A provider that does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = provider.config("oidc", true, false);
    config["tokenURL"] = json!(format!("{dead}/token"));
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"oauth2": {"enabled": true, "providers": [config]}}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(
        post(json!({"provider": "oidc", "code": "c", "codeVerifier": "v"}))
            .await
            .json,
        token_failed
    );

    // OAuth2 off: 403 before anything else.
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"oauth2": {"enabled": false}}),
            Some(&server.admin),
            200,
        )
        .await;
    let reply = post(json!({})).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json["message"],
        "The collection is not configured to allow OAuth2 authentication."
    );
    assert_eq!(count(&server, "users").await, 0);
}
