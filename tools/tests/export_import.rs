//! `pb-tools export` and `pb-tools import` end to end on data dirs written by a real
//! `pocketlog serve`: export streams record changes in log order as NDJSON or CSV (per-field
//! columns with `--collection`, RFC 4180 quoting), from a position, and `--follow` tails a
//! running server; import bulk-loads NDJSON (an export imports as is) and CSV through the
//! API's validation in batched commits, reports every bad line and applies the rest, and
//! refuses a data dir a server holds. The last test measures both rates (records/s) on a
//! large log (`EXPORT_IMPORT_RECORDS`, 100000 for the report; 5000 by default).

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server};

fn pb_tools(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(args)
        .output()
        .expect("run pb-tools");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn items_schema(name: &str) -> Value {
    json!({"name": name, "type": "base", "listRule": "", "viewRule": "", "createRule": "",
           "fields": [{"name": "title", "type": "text", "required": true},
                      {"name": "n", "type": "number"},
                      {"name": "tags", "type": "json"}]})
}

/// A data dir with collections `items` and `copies` (same fields) and, in `items`, `count`
/// creates, then one update and one delete.
async fn build(dir: &Path, count: usize) -> Vec<String> {
    create_superuser(dir);
    let mut server = Server::start(dir, &[]).await;
    let token = server.login().await;
    for name in ["items", "copies"] {
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                Some(&token),
                Some(items_schema(name)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut ids = Vec::new();
    for n in 0..count {
        let title = if n == 0 {
            "a, \"quoted\"\nline".to_string()
        } else {
            format!("item {n}")
        };
        let (status, body) = server
            .call(
                "POST",
                "/api/collections/items/records",
                None,
                Some(json!({"title": title, "n": n, "tags": ["x", n]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/collections/items/records/{}", ids[1]),
            Some(&token),
            Some(json!({"title": "changed"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/collections/items/records/{}", ids[2]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(server.terminate());
    ids
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
        .collect()
}

#[test]
fn export_streams_changes_in_log_order_as_ndjson_and_csv() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("pb_data");
    let ids = runtime().block_on(build(&dir, 5));
    let d = dir.to_str().expect("utf-8");
    let (code, out, err) = pb_tools(&["export", "--dir", d, "--collection", "items"]);
    assert_eq!(code, 0, "{err}");
    let items = lines(&out);
    assert_eq!(items.len(), 7, "5 creates, 1 update, 1 delete: {out}");
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["create", "create", "create", "create", "create", "update", "delete"]
    );
    let positions: Vec<u64> = items
        .iter()
        .map(|i| i["position"].as_u64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(items[0]["collection"], "items");
    assert_eq!(items[0]["record"]["title"], "a, \"quoted\"\nline");
    assert_eq!(items[3]["record"]["tags"], json!(["x", 3]));
    assert_eq!(items[5]["record"]["id"], ids[1].as_str());
    assert_eq!(items[5]["record"]["title"], "changed");
    assert_eq!(items[6]["record"]["id"], ids[2].as_str());

    // --from is inclusive; everything (no --collection) includes the superuser, minus secrets.
    let from = positions[5].to_string();
    let (code, out, _) = pb_tools(&[
        "export",
        "--dir",
        d,
        "--from",
        &from,
        "--collection",
        "items",
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines(&out).len(), 2);
    let (code, out, _) = pb_tools(&["export", "--dir", d]);
    assert_eq!(code, 0);
    let all = lines(&out);
    let superuser = all
        .iter()
        .find(|i| i["collection"] == "_superusers")
        .expect("superuser create");
    assert!(
        superuser["record"].get("password").is_none()
            && superuser["record"].get("tokenKey").is_none()
    );
    assert!(superuser["record"]["email"].is_string());

    // CSV with per-field columns, quoted as RFC 4180.
    let (code, out, err) = pb_tools(&[
        "export",
        "--dir",
        d,
        "--collection",
        "items",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut rows = out.lines();
    assert_eq!(rows.next(), Some("position,time,action,id,title,n,tags"));
    let first = rows.next().expect("row");
    assert!(first.contains(",create,"), "{first}");
    assert!(first.ends_with("\"a, \"\"quoted\"\""), "{first}");
    assert!(out.contains("\"[\"\"x\"\",3]\""), "{out}");
    // Unknown collection, compacted position: clear errors.
    let (code, _, err) = pb_tools(&["export", "--dir", d, "--collection", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("no collection"), "{err}");
}

#[test]
fn import_loads_ndjson_and_csv_in_batches_and_reports_bad_lines() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("pb_data");
    let ids = runtime().block_on(build(&dir, 6));
    let d = dir.to_str().expect("utf-8");
    // An export imports as is (creates of `items` into `copies`), plus bad lines.
    let (_, exported, _) = pb_tools(&["export", "--dir", d, "--collection", "items"]);
    let mut file = String::new();
    for item in lines(&exported).iter().filter(|i| i["action"] == "create") {
        file.push_str(&item.to_string());
        file.push('\n');
    }
    file.push_str("{\"title\": \"\", \"n\": 1}\n"); // required title
    file.push_str("not json\n");
    file.push_str(&format!(
        "{{\"id\": \"{}\", \"title\": \"duplicate id\"}}\n",
        ids[0]
    ));
    file.push_str("{\"title\": \"last\", \"n\": \"7\"}\n");
    let path = temp.path().join("in.ndjson");
    std::fs::write(&path, file).expect("write");
    let (code, _, err) = pb_tools(&[
        "import",
        path.to_str().expect("utf-8"),
        "--dir",
        d,
        "--collection",
        "copies",
        "--batch",
        "3",
    ]);
    assert_eq!(code, 1, "failed lines give exit code 1: {err}");
    assert!(
        err.contains("line 7: Failed to create record. (title: Cannot be blank.)"),
        "{err}"
    );
    assert!(err.contains("line 8: invalid JSON"), "{err}");
    assert!(
        err.contains("line 9: "),
        "the duplicate id is reported: {err}"
    );
    assert!(err.contains("progress: 10/10 lines"), "{err}");
    assert!(err.contains("imported 7 records"), "{err}");
    let (_, out, _) = pb_tools(&["export", "--dir", d, "--collection", "copies"]);
    let copies = lines(&out);
    let titles: Vec<&str> = copies
        .iter()
        .map(|i| i["record"]["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles.len(), 7, "{titles:?}");
    assert_eq!(titles[0], "a, \"quoted\"\nline");
    assert_eq!(titles[6], "last");
    assert_eq!(copies[6]["record"]["n"], 7, "validation cast the number");
    // Each batch is one commit: 6 good exported creates + "last" in batches of 3 -> the
    // batch holding the duplicate ran again without it.
    let mut batches: Vec<u64> = copies
        .iter()
        .map(|i| i["position"].as_u64().expect("position"))
        .collect();
    batches.dedup();
    assert_eq!(batches.len(), 3, "{batches:?}");
    assert!(copies
        .iter()
        .all(|i| i["record"]["id"] != ids[0].as_str() || i["record"]["title"] != "duplicate id"));

    // CSV: a header of field names, quoted cells with commas, quotes and newlines, JSON cells.
    let csv = "title,n,tags\n\"one, \"\"1\"\"\",1,\"[1,2]\"\n\"multi\nline\",2,\n,3,\n";
    let path = temp.path().join("in.csv");
    std::fs::write(&path, csv).expect("write");
    let (code, _, err) = pb_tools(&[
        "import",
        path.to_str().expect("utf-8"),
        "--dir",
        d,
        "--collection",
        "copies",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 5: Failed to create record. (title: Cannot be blank.)"),
        "{err}"
    );
    let (_, out, _) = pb_tools(&["export", "--dir", d, "--collection", "copies"]);
    let copies = lines(&out);
    assert_eq!(copies.len(), 9);
    assert_eq!(copies[7]["record"]["title"], "one, \"1\"");
    assert_eq!(copies[7]["record"]["tags"], json!([1, 2]));
    assert_eq!(copies[8]["record"]["title"], "multi\nline");
    assert_eq!(copies[8]["record"]["n"], 2);
}

#[test]
fn import_refuses_a_dir_a_server_holds_and_export_follow_tails_it() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("pb_data");
    let rt = runtime();
    rt.block_on(build(&dir, 3));
    let d = dir.to_str().expect("utf-8").to_string();
    rt.block_on(async {
        let mut server = Server::start(&dir, &[]).await;
        let path = temp.path().join("in.ndjson");
        std::fs::write(&path, "{\"title\": \"x\"}\n").expect("write");
        let (code, _, err) = pb_tools(&[
            "import",
            path.to_str().expect("utf-8"),
            "--dir",
            &d,
            "--collection",
            "items",
        ]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("in use by a running server"), "{err}");

        let mut child = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
            .args(["export", "--dir", &d, "--collection", "items", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn export --follow");
        let stdout = child.stdout.take().expect("stdout");
        let (send, received) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let wait = |got: &mut Vec<String>, count: usize| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < count {
                let left = deadline.saturating_duration_since(Instant::now());
                match received.recv_timeout(left) {
                    Ok(line) => got.push(line),
                    Err(_) => panic!("export --follow printed {} of {count} lines", got.len()),
                }
            }
        };
        wait(&mut got, 5); // the history: 3 creates, an update, a delete
        for n in 0..3 {
            let (status, _) = server
                .call(
                    "POST",
                    "/api/collections/items/records",
                    None,
                    Some(json!({"title": format!("live {n}"), "n": 100 + n})),
                )
                .await;
            assert_eq!(status, 200);
        }
        wait(&mut got, 8);
        let live: Vec<Value> = got[5..]
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let titles: Vec<&str> = live
            .iter()
            .map(|i| i["record"]["title"].as_str().expect("title"))
            .collect();
        assert_eq!(titles, ["live 0", "live 1", "live 2"]);
        let _ = child.kill();
        let _ = child.wait();
        assert!(server.terminate());
    });
}

#[test]
fn export_and_import_rates_on_a_large_log() {
    let records: usize = std::env::var("EXPORT_IMPORT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("pb_data");
    runtime().block_on(build(&dir, 3));
    let d = dir.to_str().expect("utf-8");
    let path = temp.path().join("big.ndjson");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        for n in 0..records {
            writeln!(
                out,
                "{}",
                json!({"title": format!("bulk {n}"), "n": n, "tags": {"k": n}})
            )
            .expect("write");
        }
    }
    let started = Instant::now();
    let (code, _, err) = pb_tools(&[
        "import",
        path.to_str().expect("utf-8"),
        "--dir",
        d,
        "--collection",
        "items",
        "--batch",
        "1000",
    ]);
    let import_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{}", &err[err.len().saturating_sub(2000)..]);
    let started = Instant::now();
    let (code, out, _) = pb_tools(&["export", "--dir", d, "--collection", "items"]);
    let export_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0);
    let exported = out.lines().count();
    assert_eq!(exported, records + 5);
    let last: Value = serde_json::from_str(out.lines().last().expect("line")).expect("json");
    assert_eq!(last["record"]["n"], records as i64 - 1);
    println!(
        "export/import: {records} records: import {:.0} records/s ({import_secs:.2} s, batches of 1000), \
         export {:.0} changes/s ({export_secs:.2} s)",
        records as f64 / import_secs,
        exported as f64 / export_secs
    );
}
