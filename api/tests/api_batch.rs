//! `POST /api/batch` over real HTTP: the settings switch, request validation, `docs/wire/errors.md`
//! envelopes, atomicity (a failing sub-request commits nothing; a good batch is ONE commit),
//! rules with `@request.context = "batch"`, upsert, per-sub-request `fields`/`expand`, limits.
//!
//! Guards against: partial batches (earlier sub-requests committed although a later one
//! failed), one commit per sub-request, and sub-requests not seeing earlier staged records.

mod common;

use common::{scenario, start, TestServer};
use serde_json::{json, Value};

/// `posts` (auth required to create; only the author may update/delete) and `ctxonly`
/// (creatable only from a batch). Returns `(alice id, alice token, bob token)`.
async fn setup(server: &TestServer) -> (String, String, String) {
    server
        .collection(json!({
            "name": "posts",
            "listRule": "", "viewRule": "",
            "createRule": "@request.auth.id != \"\"",
            "updateRule": "author = @request.auth.id",
            "deleteRule": "author = @request.auth.id",
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 100},
                {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
            ]
        }))
        .await;
    server
        .collection(json!({
            "name": "ctxonly",
            "listRule": "", "viewRule": "",
            "createRule": "@request.context = \"batch\"",
            "fields": [{"name": "title", "type": "text"}]
        }))
        .await;
    let (alice, alice_token) = server.user("alice@example.com", "alicepass123").await;
    let (_, bob_token) = server.user("bob@example.com", "bobpass1234").await;
    (alice, alice_token, bob_token)
}

async fn count(server: &TestServer, collection: &str) -> i64 {
    let list = server
        .json(
            "GET",
            &format!("/api/collections/{collection}/records"),
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    list["totalItems"].as_i64().expect("totalItems")
}

fn batch_body(requests: Value) -> String {
    json!({ "requests": requests }).to_string()
}

#[tokio::test]
async fn batch_is_disabled_by_default() {
    let server = start().await;
    let body = batch_body(json!([{"method": "POST", "url": "/api/collections/users/records"}]));
    server
        .run(&[
            scenario("disabled guest", "POST", "/api/batch", 403)
                .raw(&body)
                .expect(&[
                    r#""message":"Batch requests are not allowed.""#,
                    r#""data":{}"#,
                ]),
            scenario("disabled superuser", "POST", "/api/batch", 403)
                .raw(&body)
                .auth(&server.admin)
                .expect(&[r#""message":"Batch requests are not allowed.""#]),
            scenario("disabled before parsing", "POST", "/api/batch", 403)
                .raw("{bad")
                .expect(&["Batch requests are not allowed."]),
        ])
        .await;
}

#[tokio::test]
async fn batch_request_validation_errors() {
    let server = start().await;
    let (alice, alice_token, _) = setup(&server).await;
    server.enable_batch(3).await;
    let post = |title: &str| {
        json!({"method": "POST", "url": "/api/collections/posts/records",
               "body": {"title": title, "author": alice}})
    };
    server
        .run(&[
            scenario("empty list", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([])))
                .expect(&[
                    r#"{"data":{"requests":{"code":"validation_required","message":"Cannot be blank."}},"message":"Invalid batch request data.","status":400}"#,
                ]),
            scenario("missing requests", "POST", "/api/batch", 400)
                .raw("{}")
                .expect(&["Invalid batch request data.", "validation_required"]),
            scenario("too many", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([post("a"), post("b"), post("c"), post("d")])))
                .auth(&alice_token)
                .expect(&[
                    r#""requests":{"code":"validation_length_too_long","message":"The length must be no more than 3.","params":{"max":3,"min":0}}"#,
                ]),
            scenario("bad json", "POST", "/api/batch", 400)
                .raw("{bad")
                .expect(&[r#"{"data":{},"message":"Failed to read the submitted batch data.","status":400}"#]),
            scenario("requests not a list", "POST", "/api/batch", 400)
                .raw(r#"{"requests":{}}"#)
                .expect(&["Failed to read the submitted batch data."]),
            scenario("method and url", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "FOO", "url": "/api/x"}, {"method": "POST"}, {"url": "/x"}])))
                .expect(&[
                    r#""0":{"method":{"code":"validation_in_invalid","message":"Must be a valid value."}}"#,
                    r#""1":{"url":{"code":"validation_required","message":"Cannot be blank."}}"#,
                    r#""2":{"method":{"code":"validation_required","message":"Cannot be blank."}}"#,
                    "Invalid batch request data.",
                ]),
            scenario("lower-case method", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "post", "url": "/api/collections/posts/records"}])))
                .expect(&["validation_in_invalid"]),
            scenario("GET sub-request", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "GET", "url": "/api/collections/posts/records"}])))
                .expect(&[
                    r#"{"data":{"requests":{"0":{"code":"batch_request_failed","message":"Batch request failed.","response":{"data":{},"message":"Something went wrong while processing your request.","status":400}}}},"message":"Batch transaction failed.","status":400}"#,
                ]),
            scenario("non-record url", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "POST", "url": "/api/collections"}])))
                .expect(&["batch_request_failed", "Something went wrong while processing your request."]),
            scenario("trailing slash", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "POST", "url": "/api/collections/posts/records/"}])))
                .expect(&["batch_request_failed"]),
            scenario("PATCH without id", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "PATCH", "url": "/api/collections/posts/records"}])))
                .expect(&["batch_request_failed"]),
            scenario("unknown collection", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "POST", "url": "/api/collections/nope/records", "body": {}}])))
                .expect(&[r#""response":{"data":{},"message":"Missing collection context.","status":404}"#]),
            scenario("validation error at index 1", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([post("fine"), {"method": "POST", "url": "/api/collections/posts/records", "body": {"author": alice}}])))
                .auth(&alice_token)
                .expect(&[
                    r#"{"data":{"requests":{"1":{"code":"batch_request_failed","message":"Batch request failed.","response":{"data":{"title":{"code":"validation_required","message":"Cannot be blank."}},"message":"Failed to create record.","status":400}}}},"message":"Batch transaction failed.","status":400}"#,
                ]),
            scenario("missing record at index 1", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([post("fine"), {"method": "DELETE", "url": "/api/collections/posts/records/nope"}])))
                .auth(&alice_token)
                .expect(&[r#""1":{"code":"batch_request_failed","message":"Batch request failed.","response":{"data":{},"message":"The requested resource wasn't found.","status":404}}"#]),
            scenario("createRule fails for guest", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([post("guest")])))
                .expect(&[r#""0":{"code":"batch_request_failed","message":"Batch request failed.","response":{"data":{},"message":"Failed to create record.","status":400}}"#]),
            scenario("null rule", "POST", "/api/batch", 400)
                .raw(&batch_body(json!([{"method": "POST", "url": "/api/collections/_superusers/records", "body": {}}])))
                .auth(&alice_token)
                .expect(&[r#""response":{"data":{},"message":"Only superusers can perform this action.","status":403}"#]),
        ])
        .await;
    // None of the failing batches committed anything.
    assert_eq!(count(&server, "posts").await, 0);
}

#[tokio::test]
async fn batch_is_one_atomic_commit() {
    let server = start().await;
    let (alice, alice_token, bob_token) = setup(&server).await;
    server.enable_batch(50).await;
    let existing = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "existing", "author": alice}),
            Some(&alice_token),
            200,
        )
        .await;
    let existing_id = existing["id"].as_str().expect("id").to_string();

    // A failing last sub-request rolls back the earlier ones (and the seq does not move).
    let seq_before = server.state.engine.last_seq();
    let reply = server
        .send(
            "POST",
            "/api/batch",
            Some(&batch_body(json!([
                {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "one", "author": alice}},
                {"method": "PATCH", "url": format!("/api/collections/posts/records/{existing_id}"), "body": {"title": "changed"}},
                {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "x".repeat(101), "author": alice}},
            ]))),
            Some(&alice_token),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains(r#""requests":{"2":"#), "{}", reply.text);
    assert!(
        reply.text.contains("validation_max_text_constraint"),
        "{}",
        reply.text
    );
    assert_eq!(server.state.engine.last_seq(), seq_before);
    assert_eq!(count(&server, "posts").await, 1);
    let still = server
        .json(
            "GET",
            &format!("/api/collections/posts/records/{existing_id}"),
            Value::Null,
            None,
            200,
        )
        .await;
    assert_eq!(still["title"], "existing");

    // Someone else's update fails with the rule's 404 at its index.
    let reply = server
        .send(
            "POST",
            "/api/batch",
            Some(&batch_body(json!([
                {"method": "PATCH", "url": format!("/api/collections/posts/records/{existing_id}"), "body": {"title": "bob was here"}},
            ]))),
            Some(&bob_token),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text.contains(r#""response":{"data":{},"message":"The requested resource wasn't found.","status":404}"#),
        "{}",
        reply.text
    );

    // A good batch: create with an id, patch it (sees the staged row), upsert create, upsert
    // update, delete; ONE commit.
    let seq_before = server.state.engine.last_seq();
    let reply = server
        .send(
            "POST",
            "/api/batch",
            Some(&batch_body(json!([
                {"method": "POST", "url": "/api/collections/posts/records?expand=author", "body": {"id": "batchpost000001", "title": "first", "author": alice}},
                {"method": "PATCH", "url": "/api/collections/posts/records/batchpost000001?fields=id,title", "body": {"title": "first edited"}},
                {"method": "PUT", "url": "/api/collections/posts/records", "body": {"id": "upsertpost00001", "title": "upserted", "author": alice}},
                {"method": "PUT", "url": "/api/collections/posts/records?fields=title", "body": {"id": existing_id, "title": "upsert-updated"}},
                {"method": "DELETE", "url": "/api/collections/posts/records/upsertpost00001"},
                {"method": "POST", "url": "/api/collections/ctxonly/records", "body": {"title": "from batch"}},
            ]))),
            Some(&alice_token),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(server.state.engine.last_seq(), seq_before + 1, "one commit");
    let items = reply.json.as_array().expect("array");
    assert_eq!(items.len(), 6);
    assert_eq!(items[0]["status"], 200);
    assert_eq!(items[0]["body"]["id"], "batchpost000001");
    assert_eq!(items[0]["body"]["collectionName"], "posts");
    assert_eq!(items[0]["body"]["expand"]["author"]["id"], json!(alice));
    assert_eq!(
        items[1],
        json!({"body": {"id": "batchpost000001", "title": "first edited"}, "status": 200})
    );
    assert_eq!(items[2]["body"]["id"], "upsertpost00001");
    assert_eq!(
        items[3],
        json!({"body": {"title": "upsert-updated"}, "status": 200})
    );
    assert_eq!(items[4], json!({"body": null, "status": 204}));
    assert_eq!(items[5]["body"]["title"], "from batch");
    assert_eq!(count(&server, "posts").await, 2);
    assert_eq!(count(&server, "ctxonly").await, 1);

    // The same create outside a batch fails its rule (@request.context is "default").
    let reply = server
        .send(
            "POST",
            "/api/collections/ctxonly/records",
            Some(r#"{"title":"direct"}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("Failed to create record."));
}

#[tokio::test]
async fn batch_limits_and_multipart() {
    let server = start().await;
    let (alice, alice_token, _) = setup(&server).await;
    server.enable_batch(50).await;
    // Multipart with @jsonPayload.
    let payload = batch_body(json!([
        {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "multi", "author": alice}}
    ]));
    let body = format!(
        "--XBOUNDARY\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{payload}\r\n--XBOUNDARY--\r\n"
    );
    let reply = server
        .send_with(
            "POST",
            "/api/batch",
            Some(&body),
            Some(&alice_token),
            "multipart/form-data; boundary=XBOUNDARY",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json[0]["body"]["title"], "multi");

    // settings.batch.maxBodySize.
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"batch": {"maxBodySize": 200}}),
            Some(&server.admin),
            200,
        )
        .await;
    let big = batch_body(json!([
        {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "y".repeat(300), "author": alice}}
    ]));
    server
        .run(&[
            scenario("body over batch.maxBodySize", "POST", "/api/batch", 413)
                .raw(&big)
                .auth(&alice_token)
                .expect(&[r#"{"data":{},"message":"Request entity too large.","status":413}"#]),
        ])
        .await;
    assert_eq!(count(&server, "posts").await, 1);
}
