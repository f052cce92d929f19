//! `pocketlog migrate …` through the built binary, with the reference's messages, prompts and
//! exit codes (measured on PocketBase v0.40.6), `--automigrate` and `pb_data/types.d.ts`:
//! - offline: `create` (cancelled and confirmed), `up`, `down [n]`, `up` again giving the same
//!   schema each time (compared as JSON), `history-sync`, the errors;
//! - while a server runs on the data dir (through its control socket): `up`, `down`,
//!   `collections`;
//! - automigrate: collection changes made through the API write migration files recorded as
//!   applied, and a fresh data dir started with those files gets the same schema.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{create_superuser, runtime, Server};

/// Runs `pocketlog migrate ARGS --dir DIR` with `input` on stdin; (exit code, stdout, stderr).
fn migrate(dir: &Path, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .arg("migrate")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run migrate");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The collection `name` as stored in the projection (None: absent), timestamps removed.
fn stored(dir: &Path, name: &str) -> Option<Value> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let meta: Option<String> = conn
        .query_row(
            "SELECT meta FROM _collections WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .ok();
    meta.map(|text| without_secrets(without_timestamps(serde_json::from_str(&text).unwrap())))
}

/// Drops the `secret` keys (token secrets differ between data dirs by design).
fn without_secrets(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("secret");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

fn without_timestamps(mut value: Value) -> Value {
    let map = value.as_object_mut().unwrap();
    map.remove("created");
    map.remove("updated");
    value
}

fn field_names(collection: &Value) -> Vec<String> {
    collection["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// The migration files of `dir`, in order.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const CREATE_POSTS: &str = r#"/// <reference path="../pb_data/types.d.ts" />
migrate((app) => {
  const collection = new Collection({
    id: "pbc_posts0000001",
    name: "posts",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: "@request.auth.id != ''",
    fields: [{ id: "text0000000001", name: "title", type: "text", required: true }],
  });
  app.save(collection);
}, (app) => {
  app.delete(app.findCollectionByNameOrId("posts"));
})
"#;

const ADD_BODY: &str = r#"migrate((app) => {
  const collection = app.findCollectionByNameOrId("posts");
  collection.fields.add(new EditorField({ id: "editor00000001", name: "body" }));
  collection.updateRule = "@request.auth.id != ''";
  app.save(collection);
}, (app) => {
  const collection = app.findCollectionByNameOrId("posts");
  collection.fields.removeById("editor00000001");
  collection.updateRule = null;
  app.save(collection);
})
"#;

#[test]
fn migrate_commands_offline_match_the_reference() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pb_data");
    let migrations = root.path().join("pb_migrations");

    // No argument is `up`; the data dir and its types.d.ts are made on the way.
    let (code, out, _) = migrate(&dir, &[], "");
    assert_eq!((code, out.as_str()), (0, "No new migrations to apply.\n"));
    let types = std::fs::read_to_string(dir.join("types.d.ts")).unwrap();
    for declared in [
        "declare function routerAdd(",
        "declare function onRecordCreateRequest(",
        "declare var $app:",
        "declare function cronAdd(",
        "declare function migrate(",
    ] {
        assert!(types.contains(declared), "types.d.ts lacks {declared}");
    }

    // Errors: exit 1, one line.
    let (code, _, err) = migrate(&dir, &["create"], "");
    assert_eq!(code, 1);
    assert!(err.contains("missing migration file name"), "{err}");
    let (code, _, err) = migrate(&dir, &["foo"], "");
    assert_eq!(code, 1);
    assert!(err.contains("unsupported command: \"foo\""), "{err}");

    // create: declined (or no answer) writes nothing; confirmed writes the blank template.
    for answer in ["n\n", ""] {
        let (code, out, err) = migrate(&dir, &["create", "blank_one"], answer);
        assert_eq!(
            (code, out.as_str()),
            (0, "The command has been cancelled\n")
        );
        assert!(
            err.contains("Do you really want to create migration"),
            "{err}"
        );
    }
    assert!(files(&migrations).is_empty());
    let (code, out, _) = migrate(&dir, &["create", "blank_one"], "y\n");
    assert_eq!(code, 0);
    let created = files(&migrations);
    assert_eq!(created.len(), 1);
    assert!(created[0].ends_with("_blank_one.js"), "{created:?}");
    let path = migrations.join(&created[0]);
    assert_eq!(
        out,
        format!(
            "Successfully created file {:?}\n",
            path.display().to_string()
        )
    );
    let blank = std::fs::read_to_string(&path).unwrap();
    assert!(
        blank.starts_with("/// <reference path=\"../pb_data/types.d.ts\" />\nmigrate((app) => {")
    );

    // Hand-written migrations, named to sort after the blank one.
    std::fs::write(migrations.join("9000000000_create_posts.js"), CREATE_POSTS).unwrap();
    std::fs::write(migrations.join("9000000100_add_body.js"), ADD_BODY).unwrap();
    let (code, out, _) = migrate(&dir, &["up"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "Applied {}\nApplied 9000000000_create_posts.js\nApplied 9000000100_add_body.js\n",
            created[0]
        )
    );
    let first = stored(&dir, "posts").expect("posts exists");
    assert_eq!(field_names(&first), ["id", "title", "body"]);
    assert_eq!(first["createRule"], json!("@request.auth.id != ''"));
    assert_eq!(first["updateRule"], json!("@request.auth.id != ''"));
    let (_, out, _) = migrate(&dir, &["up"], "");
    assert_eq!(out, "No new migrations to apply.\n");

    // down (default 1): lists what it reverts and asks; declined changes nothing.
    let (code, out, err) = migrate(&dir, &["down"], "n\n");
    assert_eq!(
        (code, out.as_str()),
        (0, "The command has been cancelled\n")
    );
    assert!(
        err.contains("9000000100_add_body.js\nDo you really want to revert the last 1 applied migration(s)? (y/N) "),
        "{err}"
    );
    assert_eq!(stored(&dir, "posts").unwrap(), first);
    let (_, out, _) = migrate(&dir, &["down"], "y\n");
    assert_eq!(out, "Reverted 9000000100_add_body.js\n");
    let without = stored(&dir, "posts").unwrap();
    assert_eq!(field_names(&without), ["id", "title"]);
    assert_eq!(without["updateRule"], Value::Null);

    // up, down, up: the same schema each time.
    let (_, out, _) = migrate(&dir, &["up"], "");
    assert_eq!(out, "Applied 9000000100_add_body.js\n");
    assert_eq!(stored(&dir, "posts").unwrap(), first);
    let (_, out, _) = migrate(&dir, &["down", "2"], "y\n");
    assert_eq!(
        out,
        "Reverted 9000000100_add_body.js\nReverted 9000000000_create_posts.js\n"
    );
    assert_eq!(stored(&dir, "posts"), None);
    migrate(&dir, &["up"], "");
    assert_eq!(stored(&dir, "posts").unwrap(), first);

    // A count that is no number is 0, as the reference's.
    let (code, out, err) = migrate(&dir, &["down", "abc"], "y\n");
    assert_eq!((code, out.as_str()), (0, "No migrations to revert.\n"));
    assert!(err.contains("revert the last 0 applied"), "{err}");

    // history-sync drops the applied entry whose file is gone (seen in down's listing).
    std::fs::remove_file(migrations.join(&created[0])).unwrap();
    let (code, out, _) = migrate(&dir, &["history-sync"], "");
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "The _migrations table was synced with the available migrations.\n"
        )
    );
    let (_, _, err) = migrate(&dir, &["down", "5"], "n\n");
    assert!(!err.contains(&created[0]), "{err}");
    assert!(err.contains("9000000000_create_posts.js"), "{err}");

    // collections: a snapshot that a fresh data dir applies to the same schema.
    let (code, out, _) = migrate(&dir, &["collections"], "y\n");
    assert_eq!(code, 0, "{out}");
    let snapshot = files(&migrations)
        .into_iter()
        .find(|name| name.ends_with("_collections_snapshot.js"))
        .expect("snapshot file");
    let text = std::fs::read_to_string(migrations.join(&snapshot)).unwrap();
    assert!(text.contains("\"name\": \"posts\""), "{text}");
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir(fresh.path().join("pb_migrations")).unwrap();
    std::fs::copy(
        migrations.join(&snapshot),
        fresh.path().join("pb_migrations").join(&snapshot),
    )
    .unwrap();
    let fresh_dir = fresh.path().join("pb_data");
    let (code, out, err) = migrate(&fresh_dir, &["up"], "");
    assert_eq!((code, out), (0, format!("Applied {snapshot}\n")), "{err}");
    assert_eq!(stored(&fresh_dir, "posts").unwrap(), first);
    assert_eq!(stored(&fresh_dir, "users"), stored(&dir, "users"));
}

#[test]
fn automigrate_and_migrate_through_a_running_server() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pb_data");
    let migrations = root.path().join("pb_migrations");
    create_superuser(&dir);
    let rt = runtime();
    let (posts, users, members) = rt.block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none", "--automigrate=true"]).await;
        let token = server.login().await;
        let token = Some(token.as_str());
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                token,
                Some(json!({"name": "posts", "type": "base", "listRule": "",
                    "fields": [{"name": "title", "type": "text", "required": true},
                               {"name": "old", "type": "number"}]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(files(&migrations).len(), 1);
        // An added field and a rule; then a renamed field (the whole list is written).
        let mut fields = body["fields"].as_array().unwrap().clone();
        fields.push(json!({"name": "views", "type": "number"}));
        let (status, body) = server
            .call(
                "PATCH",
                "/api/collections/posts",
                token,
                Some(json!({"viewRule": "@request.auth.id != ''", "fields": fields})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut fields = body["fields"].as_array().unwrap().clone();
        fields[2]["name"] = json!("renamed");
        let (status, _) = server
            .call(
                "PATCH",
                "/api/collections/posts",
                token,
                Some(json!({"fields": fields})),
            )
            .await;
        assert_eq!(status, 200);
        // A change that changes nothing writes no file.
        server
            .call("PATCH", "/api/collections/posts", token, Some(json!({})))
            .await;
        let (status, _) = server
            .call(
                "POST",
                "/api/collections",
                token,
                Some(json!({"name": "tmp", "type": "base"})),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = server
            .call("DELETE", "/api/collections/tmp", token, None)
            .await;
        assert_eq!(status, 204);
        let names = files(&migrations);
        let suffixes: Vec<&str> = names.iter().map(|n| n.split_once('_').unwrap().1).collect();
        assert_eq!(
            suffixes,
            [
                "created_posts.js",
                "updated_posts.js",
                "updated_posts.js",
                "created_tmp.js",
                "deleted_tmp.js"
            ],
            "{names:?}"
        );
        let first_update = std::fs::read_to_string(migrations.join(&names[1])).unwrap();
        assert!(
            first_update.contains("collection.fields.add(new NumberField({"),
            "{first_update}"
        );
        assert!(first_update.contains("unmarshal({"), "{first_update}");

        // The CLI goes through the running server: everything is applied already.
        let (code, out, err) = migrate(&dir, &["up"], "");
        assert_eq!(
            (code, out.as_str()),
            (0, "No new migrations to apply.\n"),
            "{err}"
        );
        let (_, out, _) = migrate(&dir, &["down"], "y\n");
        assert_eq!(out, format!("Reverted {}\n", names[4]));
        let (status, _) = server
            .call("GET", "/api/collections/tmp", token, None)
            .await;
        assert_eq!(status, 200, "down re-created the deleted collection");
        let (_, out, _) = migrate(&dir, &["up"], "");
        assert_eq!(out, format!("Applied {}\n", names[4]));
        let (status, _) = server
            .call("GET", "/api/collections/tmp", token, None)
            .await;
        assert_eq!(status, 404);
        // down and up of the rename give the same schema.
        let before = stored_via(&server, token).await;
        migrate(&dir, &["down", "3"], "y\n");
        let (_, reverted) = server
            .call("GET", "/api/collections/posts", token, None)
            .await;
        assert_eq!(
            field_names(&reverted),
            ["id", "title", "old", "views"],
            "{reverted}"
        );
        migrate(&dir, &["up"], "");
        assert_eq!(stored_via(&server, token).await, before);
        // An auth collection (its token secrets are not in the file; a new one gets fresh ones).
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                token,
                Some(json!({"name": "members", "type": "auth",
                    "fields": [{"name": "nick", "type": "text"}]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let text =
            std::fs::read_to_string(migrations.join(files(&migrations).pop().unwrap())).unwrap();
        assert!(text.contains("\"name\": \"members\""), "{text}");
        assert!(!text.contains("\"secret\""), "{text}");
        // A snapshot through the server.
        let (code, out, _) = migrate(&dir, &["collections"], "y\n");
        assert_eq!(code, 0);
        assert!(out.contains("_collections_snapshot.js"), "{out}");
        for name in files(&migrations) {
            if name.ends_with("_collections_snapshot.js") {
                std::fs::remove_file(migrations.join(name)).unwrap();
            }
        }
        assert!(server.terminate());
        (before, stored(&dir, "users"), stored(&dir, "members"))
    });
    assert_eq!(field_names(&posts), ["id", "title", "renamed", "views"]);

    // A fresh data dir started with those files gets the same schema.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_migrations = fresh.path().join("pb_migrations");
    std::fs::create_dir(&fresh_migrations).unwrap();
    for name in files(&migrations) {
        std::fs::copy(migrations.join(&name), fresh_migrations.join(&name)).unwrap();
    }
    let fresh_dir = fresh.path().join("pb_data");
    create_superuser(&fresh_dir);
    rt.block_on(async {
        let mut server = Server::start(&fresh_dir, &["--sync", "none", "--automigrate=true"]).await;
        let token = server.login().await;
        assert_eq!(stored_via(&server, Some(&token)).await, posts);
        let (status, _) = server
            .call("GET", "/api/collections/tmp", Some(&token), None)
            .await;
        assert_eq!(status, 404);
        assert!(server.terminate());
    });
    // Applied at start, recorded: nothing pending, no new file.
    let (_, out, _) = migrate(&fresh_dir, &["up"], "");
    assert_eq!(out, "No new migrations to apply.\n");
    assert_eq!(files(&fresh_migrations), files(&migrations));
    assert_eq!(stored(&fresh_dir, "users"), users);
    assert_eq!(stored(&fresh_dir, "members"), members);
    assert!(members.is_some());
}

/// `posts` through the API, timestamps removed.
async fn stored_via(server: &Server, token: Option<&str>) -> Value {
    let (status, body) = server
        .call("GET", "/api/collections/posts", token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    without_timestamps(body)
}
