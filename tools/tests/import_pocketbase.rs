//! `pocketlog import-pocketbase`, against a data dir made by the reference PocketBase binary in
//! the test itself.
//!
//! The reference binary is `$POCKETBASE_BIN` (default `/tmp/pocketbase`; `.ci/get-pocketbase.sh`
//! fetches it, and `.ci/run` calls that script). Without it the test FAILS, it never skips.
//!
//! The test builds base/auth/view collections with every field type, rules and indexes,
//! records (relations, multi-selects, json, geoPoint, dates), users with passwords, a
//! superuser and a settings change through PocketBase's API, records PocketBase's answers,
//! stops it, imports, serves the import and compares pocketlog's answers with PocketBase's.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{runtime, Server};

const SU_EMAIL: &str = "a@b.c";
const SU_PASSWORD: &str = "1234567890";
const CHOICES: [&str; 3] = ["a", "b", "c"];

fn pocketbase_bin() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("POCKETBASE_BIN").unwrap_or_else(|_| "/tmp/pocketbase".to_string()),
    );
    assert!(
        bin.is_file(),
        "the reference PocketBase binary is missing at {} (run `bash .ci/get-pocketbase.sh` or set \
         POCKETBASE_BIN); this test does not skip",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running reference PocketBase on loopback.
struct Reference {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Reference {
    async fn start(dir: &Path) -> Reference {
        let bin = pocketbase_bin();
        let status = Command::new(&bin)
            .args(["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pocketbase superuser upsert");
        assert!(status.success());
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(&bin)
            // No migration files beside the data dir (pocketlog servers in other tests would
            // apply them: PocketBase's default pb_migrations is the data dir's sibling).
            .args(["serve", "--http", &address, "--automigrate=false", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pocketbase");
        let reference = Reference {
            child,
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reference
            .http
            .get(format!("{}/api/health", reference.base))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "pocketbase did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reference
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(&self.http, &self.base, method, path, token, body).await
    }

    /// Stops it like an operator (SIGTERM) and waits.
    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: a signal to our own, not yet reaped, child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.request(verb, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    collection: &str,
    identity: &str,
    password: &str,
) -> (u16, Value) {
    call(
        http,
        base,
        "POST",
        &format!("/api/collections/{collection}/auth-with-password"),
        None,
        Some(json!({"identity": identity, "password": password})),
    )
    .await
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn pocketlog(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(args)
        .output()
        .expect("run pocketlog");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Builds the PocketBase data: collections with every field type, records, users, settings.
/// Returns the superuser token.
async fn populate(pb: &Reference) -> String {
    let (status, body) = login(&pb.http, &pb.base, "_superusers", SU_EMAIL, SU_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let su = Some(token.as_str());
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections",
            su,
            Some(json!({
                "name": "tags", "type": "base",
                "listRule": "", "viewRule": "",
                "fields": [{"name": "label", "type": "text", "required": true, "max": 40}],
                "indexes": ["CREATE UNIQUE INDEX idx_tags_label ON tags (label)"]
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tags_id = body["id"].as_str().expect("id").to_string();
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections",
            su,
            Some(json!({
                "name": "posts", "type": "base",
                "listRule": "@request.auth.id != ''",
                "viewRule": "owner = @request.auth.id",
                "createRule": "@request.auth.id != '' && owner = @request.auth.id",
                "updateRule": "owner = @request.auth.id",
                "deleteRule": null,
                "fields": [
                    {"name": "title", "type": "text", "required": true, "min": 2, "max": 100, "pattern": "^[A-Za-z0-9 ]+$"},
                    {"name": "n", "type": "number", "min": 0, "max": 1000, "onlyInt": false},
                    {"name": "flag", "type": "bool"},
                    {"name": "mail", "type": "email", "onlyDomains": ["example.com"]},
                    {"name": "link", "type": "url"},
                    {"name": "when", "type": "date"},
                    {"name": "choice", "type": "select", "values": ["a", "b", "c"], "maxSelect": 1},
                    {"name": "multi", "type": "select", "values": ["x", "y", "z"], "maxSelect": 3},
                    {"name": "data", "type": "json", "maxSize": 10000},
                    {"name": "spot", "type": "geoPoint"},
                    {"name": "body", "type": "editor"},
                    {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000},
                    {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true},
                    {"name": "tags", "type": "relation", "collectionId": tags_id, "maxSelect": 5},
                    {"name": "created", "type": "autodate", "onCreate": true},
                    {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                ],
                "indexes": ["CREATE INDEX idx_posts_owner ON posts (owner)"]
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections",
            su,
            Some(json!({
                "name": "members", "type": "auth",
                "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id",
                "fields": [
                    {"name": "username", "type": "text", "required": true, "min": 3, "max": 30},
                    {"name": "level", "type": "number"}
                ],
                "indexes": ["CREATE UNIQUE INDEX idx_members_username ON members (username)"],
                "passwordAuth": {"enabled": true, "identityFields": ["email", "username"]},
                "authToken": {"duration": 3600}
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections",
            su,
            Some(json!({
                "name": "post_titles", "type": "view", "listRule": "", "viewRule": "",
                "viewQuery": "SELECT p.id, p.title, p.n FROM posts p"
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut users = Vec::new();
    for i in 0..3 {
        let (status, body) = pb
            .call(
                "POST",
                "/api/collections/users/records",
                None,
                Some(json!({
                    "email": format!("user{i}@example.com"), "password": format!("userpass{i}xyz"),
                    "passwordConfirm": format!("userpass{i}xyz"), "name": format!("User {i}"),
                    "emailVisibility": i == 0
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        users.push(body["id"].as_str().expect("id").to_string());
    }
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections/members/records",
            su,
            Some(json!({
                "email": "m@example.com", "username": "member1", "password": "memberpass1",
                "passwordConfirm": "memberpass1", "level": 7, "verified": true
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut tags = Vec::new();
    for label in ["red", "green", "blue"] {
        let (status, body) = pb
            .call(
                "POST",
                "/api/collections/tags/records",
                su,
                Some(json!({"label": label})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        tags.push(body["id"].as_str().expect("id").to_string());
    }
    for i in 0..25 {
        let (status, body) = pb
            .call(
                "POST",
                "/api/collections/posts/records",
                su,
                Some(json!({
                    "title": format!("Post {i}"), "n": i as f64 * 1.5, "flag": i % 2 == 0,
                    "mail": format!("p{i}@example.com"), "link": format!("https://example.com/{i}"),
                    "when": format!("2024-0{}-1{} 10:20:30.123Z", 1 + i % 9, i % 10),
                    "choice": CHOICES[i % 3], "multi": ["x", "z"],
                    "data": {"i": i, "nested": {"list": [1, "two", null]}, "s": "ünïcode"},
                    "spot": {"lon": 10.5 + i as f64, "lat": -33.25},
                    "body": format!("<p>Hello <b>{i}</b></p>"),
                    "owner": users[i % users.len()],
                    "tags": [tags[i % 3].clone(), tags[(i + 1) % 3].clone()]
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // One file (in PocketBase's storage/) and one OAuth2 link.
    let (status, page) = pb
        .call(
            "GET",
            "/api/collections/posts/records?perPage=1&sort=title",
            su,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let post = page["items"][0]["id"].as_str().expect("id").to_string();
    let boundary = "----importtestboundary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"note.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nhello file\r\n--{boundary}--\r\n"
    );
    let response = pb
        .http
        .patch(format!("{}/api/collections/posts/records/{post}", pb.base))
        .header("Authorization", &token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart)
        .send()
        .await
        .expect("upload");
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.text().await
    );
    let (status, body) = pb
        .call(
            "POST",
            "/api/collections/_externalAuths/records",
            su,
            Some(
                json!({"collectionRef": "_pb_users_auth_", "recordRef": users[1],
                        "provider": "gitlab", "providerId": "gl-4242"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = pb
        .call(
            "PATCH",
            "/api/settings",
            su,
            Some(json!({"meta": {"appName": "Imported App", "appURL": "https://imported.example.com"},
                        "batch": {"enabled": true, "maxRequests": 30, "timeout": 5, "maxBodySize": 0}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    token
}

/// The answers compared before and after: every collection and every record of every
/// non-system collection, as a superuser sees them.
async fn answers(
    http: &reqwest::Client,
    base: &str,
    su: &str,
) -> (Value, BTreeMap<String, Value>, Value) {
    let (status, list) = call(
        http,
        base,
        "GET",
        "/api/collections?perPage=500&sort=name",
        Some(su),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let mut collections = Vec::new();
    let mut records = BTreeMap::new();
    for collection in list["items"].as_array().expect("items") {
        let name = collection["name"].as_str().expect("name").to_string();
        if collection["system"] == json!(true) && name != "_externalAuths" {
            continue;
        }
        let mut collection = collection.clone();
        let object = collection.as_object_mut().expect("object");
        // Dates of the collection definition and the secrets are not carried over.
        for key in ["created", "updated"] {
            object.remove(key);
        }
        for (_, option) in object.iter_mut() {
            if let Some(option) = option.as_object_mut() {
                option.remove("secret");
            }
        }
        if object["type"] == json!("view") {
            // A view's fields are derived again from its query: their ids are random
            // (`_clone_…`) in both servers, and the view's `id` field as the reference infers it
            // is a separate bullet of issue #17 (pocketlog's is not a required primary key yet).
            for field in object["fields"].as_array_mut().expect("fields") {
                let field = field.as_object_mut().expect("field");
                field.remove("id");
                if field["name"] == json!("id") {
                    for key in ["pattern", "primaryKey", "required", "system"] {
                        field.remove(key);
                    }
                }
            }
        }
        // System collections keep pocketlog's own definitions (only their records are
        // imported); pocketlog's `_externalAuths` lacks the reference's two unique indexes.
        if object["system"] != json!(true) {
            collections.push(collection);
        }
        let (status, page) = call(
            http,
            base,
            "GET",
            &format!("/api/collections/{name}/records?perPage=500&sort=id"),
            Some(su),
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: {page}");
        records.insert(name, page);
    }
    let (status, settings) = call(http, base, "GET", "/api/settings", Some(su), None).await;
    assert_eq!(status, 200, "{settings}");
    (Value::Array(collections), records, settings)
}

/// The JSON paths where `got` and `want` differ, with both values.
fn diff(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for key in g.keys().chain(w.keys().filter(|k| !g.contains_key(*k))) {
                diff(
                    &format!("{path}.{key}"),
                    g.get(key).unwrap_or(&Value::Null),
                    w.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (index, (g, w)) in g.iter().zip(w).enumerate() {
                diff(&format!("{path}[{index}]"), g, w, out);
            }
        }
        _ if got != want => out.push(format!("{path}: pocketlog {got} / reference {want}")),
        _ => {}
    }
}

fn assert_same(what: &str, got: &Value, want: &Value) {
    let mut out = Vec::new();
    diff(what, got, want, &mut out);
    assert!(
        out.is_empty(),
        "{} differences:\n{}",
        out.len(),
        out.join("\n")
    );
}

fn stored_hash(dir: &Path, table: &str, email: &str) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open data.db");
    conn.query_row(
        &format!("SELECT password FROM {table} WHERE email = ?1"),
        [email],
        |row| row.get(0),
    )
    .expect("password")
}

#[test]
fn a_pocketbase_data_dir_is_imported_and_served() {
    let root = tempfile::tempdir().expect("tempdir");
    let source = root.path().join("pb_source");
    let target = root.path().join("pb_data");
    let rt = runtime();
    let (pb_collections, pb_records, pb_settings, old_user_token) = rt.block_on(async {
        let pb = Reference::start(&source).await;
        let su = populate(&pb).await;
        let (collections, records, settings) = answers(&pb.http, &pb.base, &su).await;
        let (status, body) = login(
            &pb.http,
            &pb.base,
            "users",
            "user0@example.com",
            "userpass0xyz",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token").to_string();
        let (status, body) = pb
            .call(
                "POST",
                "/api/backups",
                Some(&su),
                Some(json!({"name": "pb_backup.zip"})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        pb.stop();
        (collections, records, settings, token)
    });
    let before = snapshot(&source);

    // `serve` on the PocketBase dir explains what to do.
    let (ok, out) = pocketlog(&[
        "serve",
        "--http",
        "127.0.0.1:1",
        "--dir",
        source.to_str().expect("utf8"),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("is a PocketBase data dir")
            && out.contains("pocketlog import-pocketbase --from"),
        "{out}"
    );

    // The import.
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        source.to_str().expect("utf8"),
        "--dir",
        target.to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Imported 5 collections and 36 records"),
        "{out}"
    );
    assert!(out.contains("├─ settings: imported"), "{out}");
    assert!(out.contains("├─ files: 1 copied"), "{out}");
    assert!(out.contains("├─ _authOrigins: 2 records"), "{out}");
    assert!(out.contains("├─ posts: 25 records"), "{out}");
    assert!(out.contains("├─ users: 3 records"), "{out}");
    assert!(out.contains("├─ _superusers: 1 records"), "{out}");
    assert!(out.contains("records/s") && out.contains("MB/s"), "{out}");
    assert!(
        out.contains("token PocketBase issued is now invalid"),
        "{out}"
    );
    assert_eq!(snapshot(&source), before, "the import modified the source");
    assert!(
        !root.path().join(".pb_data.importing").exists(),
        "the staging dir was left behind"
    );

    // A second import into the same dir is refused and changes nothing.
    let log_before = snapshot(&target.join("log"));
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        source.to_str().expect("utf8"),
        "--dir",
        target.to_str().expect("utf8"),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("is not empty (already imported?)"), "{out}");
    assert_eq!(snapshot(&target.join("log")), log_before);

    let (code, out) = support::pb_tools(&["verify"], &target);
    assert_eq!(code, 0, "{out}");

    assert!(stored_hash(&target, "users", "user1@example.com").starts_with("$2a$"));
    rt.block_on(async {
        let server = Server::start(&target, &["--sync", "none"]).await;
        let (status, body) = login(
            &server.http,
            &server.base,
            "_superusers",
            SU_EMAIL,
            SU_PASSWORD,
        )
        .await;
        assert_eq!(
            status, 200,
            "the superuser signs in with the old password: {body}"
        );
        let su = body["token"].as_str().expect("token").to_string();
        let (collections, records, settings) = answers(&server.http, &server.base, &su).await;
        assert_same("collections", &collections, &pb_collections);
        assert_eq!(
            records.keys().collect::<Vec<_>>(),
            pb_records.keys().collect::<Vec<_>>()
        );
        for (name, page) in &pb_records {
            assert_same(name, &records[name], page);
        }
        assert_eq!(settings["meta"], pb_settings["meta"]);
        assert_eq!(settings["batch"], pb_settings["batch"]);
        // The uploaded file came along: it downloads byte-identically.
        let with_file = records["posts"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|post| post["doc"].as_str().is_some_and(|doc| !doc.is_empty()))
            .expect("a post with a file")
            .clone();
        let url = format!(
            "{}/api/files/posts/{}/{}",
            server.base,
            with_file["id"].as_str().expect("id"),
            with_file["doc"].as_str().expect("doc")
        );
        let response = server.http.get(&url).send().await.expect("download");
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(&response.bytes().await.expect("bytes")[..], b"hello file");

        // Old passwords work; old tokens do not.
        for i in 0..3 {
            let (status, body) = login(
                &server.http,
                &server.base,
                "users",
                &format!("user{i}@example.com"),
                &format!("userpass{i}xyz"),
            )
            .await;
            assert_eq!(status, 200, "user{i}: {body}");
        }
        let (status, _) = login(
            &server.http,
            &server.base,
            "users",
            "user0@example.com",
            "wrongpass0",
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = login(
            &server.http,
            &server.base,
            "members",
            "member1",
            "memberpass1",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = call(
            &server.http,
            &server.base,
            "POST",
            "/api/collections/users/auth-refresh",
            Some(&old_user_token),
            None,
        )
        .await;
        assert_eq!(status, 401, "a token PocketBase issued still works");
        // After the re-hash the new hash works too.
        let (status, body) = login(
            &server.http,
            &server.base,
            "users",
            "user0@example.com",
            "userpass0xyz",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // The SDK flows go on in the imported dir: a user creates a record under the
        // imported rules and lists it.
        let (status, body) = login(
            &server.http,
            &server.base,
            "users",
            "user1@example.com",
            "userpass1xyz",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let user_token = body["token"].as_str().expect("token").to_string();
        let user_id = body["record"]["id"].as_str().expect("id").to_string();
        let (status, created) = call(
            &server.http,
            &server.base,
            "POST",
            "/api/collections/posts/records",
            Some(&user_token),
            Some(json!({"title": "Made after import", "owner": user_id})),
        )
        .await;
        assert_eq!(status, 200, "{created}");
        let (status, page) = call(
            &server.http,
            &server.base,
            "GET",
            "/api/collections/posts/records?filter=(title%3D%27Made%20after%20import%27)",
            Some(&user_token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["totalItems"], 1, "{page}");
        assert_eq!(page["items"][0]["id"], created["id"]);
        let mut server = server;
        assert!(server.terminate());
    });
    // Logged-in users were re-hashed to argon2id; the hash is an ordinary commit.
    for email in [
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
    ] {
        let hash = stored_hash(&target, "users", email);
        assert!(hash.starts_with("$argon2id$"), "{email}: {hash}");
    }
    assert!(stored_hash(&target, "_superusers", SU_EMAIL).starts_with("$argon2id$"));
    let (code, out) = support::pb_tools(&["verify"], &target);
    assert_eq!(code, 0, "{out}");

    // A PocketBase backup zip imports the same.
    let from_zip = root.path().join("pb_from_zip");
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        source.join("backups/pb_backup.zip").to_str().expect("utf8"),
        "--dir",
        from_zip.to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Imported 5 collections and 36 records"),
        "{out}"
    );
    assert!(out.contains("├─ files: 1 copied"), "{out}");
    let (code, out) = support::pb_tools(&["verify"], &from_zip);
    assert_eq!(code, 0, "{out}");
    // `pb-tools restore` takes the same zip.
    let restored = root.path().join("pb_restored");
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["restore", "--from"])
        .arg(source.join("backups/pb_backup.zip"))
        .arg("--to")
        .arg(&restored)
        .output()
        .expect("run pb-tools restore");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.contains("Imported 5 collections and 36 records"),
        "{out}"
    );
    let (code, out) = support::pb_tools(&["verify"], &restored);
    assert_eq!(code, 0, "{out}");
    // Neither a data dir nor a backup: refused, nothing created.
    let junk = root.path().join("junk.zip");
    std::fs::write(&junk, b"not a zip").expect("write");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (from, message) in [
        (
            &junk,
            "is neither a PocketBase data dir nor a PocketBase backup zip",
        ),
        (&empty, "is not a PocketBase data dir or backup"),
    ] {
        let nowhere = root.path().join("nowhere");
        let (ok, out) = pocketlog(&[
            "import-pocketbase",
            "--from",
            from.to_str().expect("utf8"),
            "--dir",
            nowhere.to_str().expect("utf8"),
        ]);
        assert!(!ok && out.contains(message), "{out}");
        assert!(!nowhere.exists());
    }

    // A leftover staging dir (a failed or running import) is refused, never removed.
    let staged = root.path().join(".pb_staged.importing");
    std::fs::create_dir(&staged).expect("mkdir");
    std::fs::write(staged.join("keep"), b"x").expect("write");
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        source.to_str().expect("utf8"),
        "--dir",
        root.path().join("pb_staged").to_str().expect("utf8"),
    ]);
    assert!(
        !ok && out.contains("holds an unfinished (or running) import"),
        "{out}"
    );
    assert!(staged.join("keep").exists() && !root.path().join("pb_staged").exists());

    // A source whose latest writes are still in `data.db-wal` (PocketBase not stopped cleanly):
    // they are imported, and neither `data.db` nor its `-wal`/`-shm` change.
    let crashed = root.path().join("pb_crashed");
    std::fs::create_dir(&crashed).expect("mkdir");
    std::fs::copy(source.join("data.db"), crashed.join("data.db")).expect("copy");
    let writer = rusqlite::Connection::open(crashed.join("data.db")).expect("open");
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             INSERT INTO tags (id, label) VALUES ('walonlytag00001', 'purple');",
        )
        .expect("write into the WAL");
    assert!(
        std::fs::metadata(crashed.join("data.db-wal"))
            .expect("wal")
            .len()
            > 0
    );
    let before = snapshot(&crashed);
    let second = root.path().join("pb_data2");
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        crashed.to_str().expect("utf8"),
        "--dir",
        second.to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("has a write-ahead log"), "{out}");
    assert!(out.contains("├─ tags: 4 records"), "{out}");
    assert_eq!(
        snapshot(&crashed),
        before,
        "the import modified the source or its WAL"
    );
    drop(writer);
}

/// The import rate on a larger PocketBase data dir (`IMPORT_RATE_RECORDS`; a short run of
/// 2,000 records by default, as in CI; 1,000,000 for the closing note's figure): the collection is made by the reference, its rows are generated straight into the
/// reference's `data.db` (a fixture; PocketBase's API would take minutes). Prints the rate.
/// Run: `IMPORT_RATE_RECORDS=1000000 cargo test -p pocketlog-tools --test import_pocketbase import_rate -- --nocapture`.
#[test]
fn import_rate() {
    let records: usize = std::env::var("IMPORT_RATE_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let root = tempfile::tempdir().expect("tempdir");
    let source = root.path().join("pb_source");
    let target = root.path().join("pb_data");
    runtime().block_on(async {
        let pb = Reference::start(&source).await;
        let (status, body) = login(&pb.http, &pb.base, "_superusers", SU_EMAIL, SU_PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        let su = body["token"].as_str().expect("token").to_string();
        let (status, body) = pb
            .call(
                "POST",
                "/api/collections",
                Some(&su),
                Some(json!({
                    "name": "items", "type": "base",
                    "fields": [
                        {"name": "title", "type": "text"},
                        {"name": "n", "type": "number"},
                        {"name": "flag", "type": "bool"},
                        {"name": "data", "type": "json"},
                        {"name": "created", "type": "autodate", "onCreate": true},
                        {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                    ]
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        pb.stop();
    });
    {
        let mut conn = rusqlite::Connection::open(source.join("data.db")).expect("open");
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO items (id, title, n, flag, data, created, updated) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )
                .expect("prepare");
            for i in 0..records {
                insert
                    .execute(rusqlite::params![
                        format!("{i:015}"),
                        format!("Item number {i} with a title of some length"),
                        i as f64 / 3.0,
                        i % 2 == 0,
                        format!(r#"{{"i":{i},"tags":["a","b","c"],"note":"lorem ipsum dolor sit amet"}}"#),
                        "2024-05-01 12:00:00.000Z",
                    ])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let db_bytes = std::fs::metadata(source.join("data.db"))
        .expect("size")
        .len();
    let started = Instant::now();
    let (ok, out) = pocketlog(&[
        "import-pocketbase",
        "--from",
        source.to_str().expect("utf8"),
        "--dir",
        target.to_str().expect("utf8"),
    ]);
    let elapsed = started.elapsed();
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("├─ items: {records} records")),
        "{out}"
    );
    eprintln!(
        "import of {records} records (PocketBase data.db {:.1} MB) in {elapsed:?}: {:.0} records/s, {:.2} MB/s of data.db\n{}",
        db_bytes as f64 / 1e6,
        records as f64 / elapsed.as_secs_f64(),
        db_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        out.lines().next().unwrap_or("")
    );
    let (code, out) = support::pb_tools(&["verify"], &target);
    assert_eq!(code, 0, "{out}");
}
