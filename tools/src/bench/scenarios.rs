//! The schema the benchmark sets up (as a superuser, through the public API) and the scenarios.
//!
//! The default scenarios measure what real apps send (issue #21): the server keeps its stock
//! settings (request logs on), callers are signed-in users under rules, views hit random ids
//! over the whole table, records are about 1 KB (and 3 KB in `view_auth_3k_c64`), and the
//! realtime writer is paced (25 creates/s) as well as a burst. The old best cases (guests on a
//! small hot set of tiny records) stay as named extras ([`EXTRAS`]).
//!
//! Collections (created when missing, so a second run against the same server reuses them):
//! - `bench_pub`: public createRule `""`; the guest create scenarios write here.
//! - `bench_owned`: createRule `@request.auth.id != "" && user = @request.auth.id`.
//! - `bench_authors` (100 records) and `bench_list` (`--records`, default 100,000, ~1 KB each)
//!   with a relation to an author, list/view rule `@request.auth.id != ""`.
//! - `bench_docs` (`--records` / 5, ~3 KB each), same rules.
//! - `bench_hot` (2,000 small public records): the guest extras read here.
//! - `bench_rt`: the realtime fan-out target.
//!
//! Users `benchuserN@example.com` in the default `users` collection sign in for the auth
//! scenarios.

use super::client::{run_load, Server};
use super::sse::{now_us, Subscriber, SubscriberReport};
use super::stats::{
    cpu_per_request_into, memory_into, percentiles_into, proc_cpu_us, round1, Recorder,
};
use anyhow::{bail, Context, Result};
use api::model::{CollectionKind, RuleKind};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const USER_PASSWORD: &str = "benchpass123";
const USERS: usize = 64;
const AUTHORS: usize = 100;
const LOAD_BATCH: usize = 500;

/// The default scenarios, in run order.
pub const ALL: &[&str] = &[
    "create_c64",
    "create_auth_c64",
    "view_auth_c64",
    "view_auth_3k_c64",
    "list_auth_c64",
    "list_expand_auth_c64",
    "auth_c16",
    "realtime_paced",
    "realtime_burst",
];

/// Best cases, run only when named: guests, tiny records, a hot set of 2,000 ids.
pub const EXTRAS: &[&str] = &["create_c1", "view_c64", "list_c64", "list_expand_c64"];

/// Creates per second of the paced realtime writer.
pub const PACED_RATE: f64 = 25.0;
/// Records that hold the "hot" best-case set.
const HOT: usize = 2000;
/// The text of a ~1 KB record (the other fields add ~150 bytes).
const BODY_1K: usize = 850;
/// The text of a ~3 KB record.
const BODY_3K: usize = 2850;

/// A deterministic filler text of `len` bytes (varied, so compression or dedupe cannot help).
fn filler(i: usize, len: usize) -> String {
    const WORDS: &[&str] = &[
        "ledger", "river", "amber", "quartz", "meadow", "signal", "harbor", "violet", "copper",
        "lantern", "orbit", "thistle", "cinder", "marble", "falcon", "willow",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

/// A small xorshift generator per load worker (random ids without a shared lock).
fn pick(worker: usize, i: u64, len: usize) -> usize {
    let mut x = (worker as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)
        ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % len.max(1) as u64) as usize
}

/// Knobs shared by the scenarios.
#[derive(Clone, Debug)]
pub struct Options {
    pub duration: Duration,
    pub records: usize,
    /// Subscriber counts for the realtime scenario (one JSON line each).
    pub subscribers: Vec<usize>,
    /// Concurrent writers during the realtime scenario.
    pub rt_writers: usize,
    /// Records created during the realtime scenario.
    pub rt_events: u64,
    /// Seconds to wait for every subscriber to receive every event.
    pub rt_drain: Duration,
    /// Creates per second during the realtime burst scenario (0 = unpaced).
    pub rt_rate: f64,
    /// Turn request logs off on the server first (a best case; stock settings keep them on).
    pub logs_off: bool,
}

/// What set-up produced.
pub struct Fixture {
    pub users: Vec<(String, String)>,
    /// Every `bench_list` id.
    pub list_ids: Vec<String>,
    /// Every `bench_docs` id.
    pub docs_ids: Vec<String>,
    /// The `bench_hot` ids.
    pub hot_ids: Vec<String>,
}

async fn ensure_collection(server: &Server, body: Value) -> Result<String> {
    let name = body["name"]
        .as_str()
        .expect("collection bodies have a name")
        .to_string();
    let (status, existing) = server
        .call(
            Method::GET,
            &format!("/api/collections/{name}"),
            Some(&server.superuser_token),
            None,
        )
        .await?;
    if status == 200 {
        return Ok(existing["id"].as_str().unwrap_or_default().to_string());
    }
    let created = server.admin(Method::POST, "/api/collections", body).await?;
    Ok(created["id"].as_str().unwrap_or_default().to_string())
}

/// List, view and create open to everyone (`""`).
const PUBLIC: [(RuleKind, &str); 3] = [
    (RuleKind::List, ""),
    (RuleKind::View, ""),
    (RuleKind::Create, ""),
];

/// List and view for signed-in users; create for superusers only.
const SIGNED_IN: [(RuleKind, &str); 2] = [
    (RuleKind::List, "@request.auth.id != \"\""),
    (RuleKind::View, "@request.auth.id != \"\""),
];

/// A base collection's create body: the given rules set, every other rule superusers-only.
fn base_collection(name: &str, rules: &[(RuleKind, &str)], fields: Value) -> Value {
    let mut body = json!({"name": name, "type": CollectionKind::Base.as_str(), "fields": fields});
    for (kind, rule) in rules {
        body[kind.as_str()] = json!(rule);
    }
    body
}

fn autodates() -> [Value; 2] {
    [
        json!({"name":"created","type":"autodate","onCreate":true}),
        json!({"name":"updated","type":"autodate","onCreate":true,"onUpdate":true}),
    ]
}

/// Creates the schema, users and list data (idempotent).
pub async fn setup(server: &Server, options: &Options) -> Result<Fixture> {
    // Batch on for the bulk load; request logs stay as the server has them unless asked.
    let mut settings =
        json!({"batch":{"enabled":true,"maxRequests":1000,"timeout":120,"maxBodySize":0}});
    if options.logs_off {
        settings["logs"] = json!({"maxDays": 0});
    }
    if let Err(err) = server.admin(Method::PATCH, "/api/settings", settings).await {
        eprintln!("warning: settings not applied: {err:#}");
    }
    let [created, updated] = autodates();
    ensure_collection(server, base_collection("bench_pub", &PUBLIC,
        json!([{"name":"title","type":"text"},{"name":"n","type":"number"},{"name":"body","type":"text","max":10000},created.clone(),updated.clone()]))).await?;
    ensure_collection(server, base_collection("bench_owned",
        &[(RuleKind::List, ""), (RuleKind::View, ""),
          (RuleKind::Create, "@request.auth.id != \"\" && user = @request.auth.id")],
        json!([{"name":"title","type":"text"},{"name":"body","type":"text","max":10000},
               {"name":"user","type":"relation","collectionId":"_pb_users_auth_","maxSelect":1,"required":true},
               created.clone(),updated.clone()]))).await?;
    let authors_id = ensure_collection(
        server,
        base_collection(
            "bench_authors",
            &PUBLIC,
            json!([{"name":"name","type":"text"},created.clone(),updated.clone()]),
        ),
    )
    .await?;
    let list_fields = json!([{"name":"title","type":"text"},{"name":"score","type":"number"},{"name":"category","type":"text"},
               {"name":"body","type":"text","max":10000},
               {"name":"author","type":"relation","collectionId":authors_id,"maxSelect":1},
               created.clone(),updated.clone()]);
    ensure_collection(
        server,
        base_collection("bench_list", &SIGNED_IN, list_fields.clone()),
    )
    .await?;
    ensure_collection(
        server,
        base_collection("bench_docs", &SIGNED_IN, list_fields.clone()),
    )
    .await?;
    ensure_collection(server, base_collection("bench_hot", &PUBLIC, list_fields)).await?;
    ensure_collection(server, base_collection("bench_rt", &PUBLIC,
        json!([{"name":"w","type":"number"},{"name":"n","type":"number"},{"name":"t","type":"number"},
               {"name":"title","type":"text"},created,updated]))).await?;

    let users = ensure_users(server).await?;
    let authors = ensure_records(
        server,
        "bench_authors",
        AUTHORS,
        |i, _| json!({"name": format!("author {i}")}),
        &[],
        AUTHORS,
    )
    .await?;
    let started = Instant::now();
    let record = |body: usize| {
        move |i: usize, authors: &[String]| {
            json!({"title": format!("record {i}"), "score": (i * 7919) % 1000,
                   "category": format!("c{}", i % 10), "author": authors[i % authors.len()],
                   "body": filler(i, body)})
        }
    };
    let list_ids = ensure_records(
        server,
        "bench_list",
        options.records,
        record(BODY_1K),
        &authors,
        options.records,
    )
    .await?;
    let docs = (options.records / 5).max(1);
    let docs_ids =
        ensure_records(server, "bench_docs", docs, record(BODY_3K), &authors, docs).await?;
    let hot_ids = ensure_records(
        server,
        "bench_hot",
        HOT,
        |i, authors| {
            json!({"title": format!("record {i}"), "score": (i * 7919) % 1000,
                   "category": format!("c{}", i % 10), "author": authors[i % authors.len()]})
        },
        &authors,
        HOT,
    )
    .await?;
    eprintln!(
        "set-up: {} list records, {} docs, {} hot ready ({:.1} s)",
        list_ids.len(),
        docs_ids.len(),
        hot_ids.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Fixture {
        users,
        list_ids,
        docs_ids,
        hot_ids,
    })
}

async fn ensure_users(server: &Server) -> Result<Vec<(String, String)>> {
    let mut users = Vec::new();
    for i in 0..USERS {
        let email = format!("benchuser{i}@example.com");
        let (status, body) = server
            .call(Method::POST, "/api/collections/users/records", None,
                Some(&json!({"email": email, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD, "name": format!("user {i}")})))
            .await?;
        if status != 200 && status != 400 {
            bail!("creating {email}: {status} {body}");
        }
        let (status, body) = server
            .call(
                Method::POST,
                "/api/collections/users/auth-with-password",
                None,
                Some(&json!({"identity": email, "password": USER_PASSWORD})),
            )
            .await?;
        if status != 200 {
            bail!("signing in as {email}: {status} {body}");
        }
        users.push((
            body["record"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body["token"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(users)
}

/// Makes `collection` hold at least `count` records (bulk-loaded through the batch API, with
/// plain creates as the fallback); returns up to `keep` of their ids, oldest first.
async fn ensure_records(
    server: &Server,
    collection: &str,
    count: usize,
    make: impl Fn(usize, &[String]) -> Value,
    context: &[String],
    keep: usize,
) -> Result<Vec<String>> {
    let path = format!("/api/collections/{collection}/records");
    let existing = server
        .admin(Method::GET, &format!("{path}?perPage=1"), Value::Null)
        .await?["totalItems"]
        .as_u64()
        .unwrap_or(0) as usize;
    let mut bodies: Vec<Value> = (existing..count).map(|i| make(i, context)).collect();
    let mut pending = Vec::new();
    while !bodies.is_empty() {
        let rest = bodies.split_off(bodies.len().min(LOAD_BATCH));
        let chunk = std::mem::replace(&mut bodies, rest);
        let server = server.clone();
        let path = path.clone();
        pending.push(async move {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|body| json!({"method":"POST","url": path, "body": body}))
                .collect();
            let (status, _) = server
                .call(
                    Method::POST,
                    "/api/batch",
                    Some(&server.superuser_token),
                    Some(&json!({"requests": requests})),
                )
                .await?;
            if status != 200 {
                for body in &chunk {
                    server.admin(Method::POST, &path, body.clone()).await?;
                }
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    let mut stream = futures::stream::iter(pending).buffer_unordered(4);
    use futures::StreamExt;
    let mut done = existing;
    while let Some(result) = stream.next().await {
        result?;
        done = (done + LOAD_BATCH).min(count);
        if count >= 10 * LOAD_BATCH && done % (20 * LOAD_BATCH) < LOAD_BATCH {
            eprintln!("set-up: {collection} {done}/{count}");
        }
    }
    // Ids, oldest first.
    let mut ids = Vec::new();
    let mut page = 1;
    while ids.len() < count.min(keep) {
        let body = server
            .admin(
                Method::GET,
                &format!("{path}?perPage=1000&page={page}&skipTotal=1&fields=id&sort=id"),
                Value::Null,
            )
            .await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        ids.extend(
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_string)),
        );
        page += 1;
    }
    Ok(ids)
}

fn line(server_name: &str, scenario: &str, mut fields: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("server".into(), json!(server_name));
    out.insert("scenario".into(), json!(scenario));
    out.append(&mut fields);
    Value::Object(out)
}

/// Runs the named scenarios; one JSON object per scenario (printed by the caller).
pub async fn run(
    server: &Server,
    server_name: &str,
    fixture: &Fixture,
    options: &Options,
    names: &[String],
    emit: &mut dyn FnMut(Value),
) -> Result<()> {
    for name in names {
        match name.as_str() {
            "realtime_paced" | "realtime_burst" | "realtime" => {
                let paced = name == "realtime_paced";
                let (writers, events, rate) = if paced {
                    let events = (PACED_RATE * options.duration.as_secs_f64() * 2.0).max(50.0);
                    (1, events as u64, PACED_RATE)
                } else {
                    (options.rt_writers, options.rt_events, options.rt_rate)
                };
                let counts: Vec<usize> = if paced {
                    options.subscribers.clone()
                } else {
                    // The burst with nobody listening is the baseline of its ratio.
                    std::iter::once(0)
                        .chain(options.subscribers.iter().copied())
                        .collect()
                };
                for subscribers in counts {
                    let plan = Realtime {
                        subscribers,
                        writers,
                        events,
                        rate,
                    };
                    let fields = realtime(server, options, &plan).await?;
                    emit(line(server_name, &format!("{name}_{subscribers}"), fields));
                }
            }
            other => {
                let fields = if other.starts_with("files_") {
                    super::files::scenario(server, options.duration, other).await?
                } else {
                    scenario(server, fixture, options, other).await?
                };
                emit(line(server_name, other, fields));
            }
        }
    }
    Ok(())
}

/// One realtime run's shape.
struct Realtime {
    subscribers: usize,
    writers: usize,
    events: u64,
    rate: f64,
}

async fn scenario(
    server: &Server,
    fixture: &Fixture,
    options: &Options,
    name: &str,
) -> Result<Map<String, Value>> {
    let s = server.clone();
    let d = options.duration;
    let fields = match name {
        "create_c1" | "create_c64" => {
            let concurrency = if name == "create_c1" { 1 } else { 64 };
            let url = s.url("/api/collections/bench_pub/records");
            run_load(server, concurrency, d, move |w, i| {
                let request = s
                    .http
                    .post(url.as_str())
                    .json(&json!({"title": format!("w{w} i{i}"), "n": i, "body": filler(i as usize, BODY_1K)}));
                let s = s.clone();
                async move { s.fire(request).await }
            })
            .await
        }
        "create_auth_c64" => {
            let url = s.url("/api/collections/bench_owned/records");
            let users = fixture.users.clone();
            run_load(server, 64, d, move |w, i| {
                let (id, token) = &users[w % users.len()];
                let request = s
                    .http
                    .post(url.as_str())
                    .header("Authorization", token)
                    .json(&json!({"title": format!("w{w} i{i}"), "user": id, "body": filler(i as usize, BODY_1K)}));
                let s = s.clone();
                async move { s.fire(request).await }
            })
            .await
        }
        "view_c64" | "view_auth_c64" | "view_auth_3k_c64" => {
            let (collection, ids, signed_in) = match name {
                "view_c64" => ("bench_hot", fixture.hot_ids.clone(), false),
                "view_auth_c64" => ("bench_list", fixture.list_ids.clone(), true),
                _ => ("bench_docs", fixture.docs_ids.clone(), true),
            };
            if ids.is_empty() {
                bail!("no records to view");
            }
            let users = fixture.users.clone();
            let base = s.url(&format!("/api/collections/{collection}/records/"));
            run_load(server, 64, d, move |w, i| {
                let id = &ids[pick(w, i, ids.len())];
                let mut request = s.http.get(format!("{base}{id}"));
                if signed_in {
                    request = request.header("Authorization", &users[w % users.len()].1);
                }
                let s = s.clone();
                async move { s.fire(request).await }
            })
            .await
        }
        "list_c64" | "list_expand_c64" | "list_auth_c64" | "list_expand_auth_c64" => {
            let signed_in = name.contains("auth");
            let collection = if signed_in { "bench_list" } else { "bench_hot" };
            let url = s.url(&format!("/api/collections/{collection}/records"));
            let expand = name.contains("expand");
            let users = fixture.users.clone();
            run_load(server, 64, d, move |w, i| {
                let category = format!("c{}", (w + i as usize) % 10);
                let floor = pick(w, i, 900);
                let filter = format!("category = '{category}' && score > {floor}");
                let mut query = vec![
                    ("page", "1".to_string()),
                    ("perPage", "30".to_string()),
                    ("filter", filter),
                    ("sort", "-score,created".to_string()),
                ];
                if expand {
                    query.push(("expand", "author".to_string()));
                }
                let mut request = s.http.get(url.as_str()).query(&query);
                if signed_in {
                    request = request.header("Authorization", &users[w % users.len()].1);
                }
                let s = s.clone();
                async move { s.fire(request).await }
            })
            .await
        }
        "auth_c16" => {
            let url = s.url("/api/collections/users/auth-with-password");
            run_load(server, 16, d, move |w, i| {
                let user = (w + i as usize * 16) % USERS;
                let request = s.http.post(url.as_str())
                    .json(&json!({"identity": format!("benchuser{user}@example.com"), "password": USER_PASSWORD}));
                let s = s.clone();
                async move { s.fire(request).await }
            }).await
        }
        hook if hook.starts_with("hooks_") => super::hooks::scenario(server, d, hook).await?,
        other => bail!(
            "unknown scenario {other:?} (known: {}, {})",
            ALL.join(", "),
            EXTRAS.join(", ")
        ),
    };
    Ok(fields)
}

/// Realtime fan-out: `subscribers` SSE clients on `bench_rt/*`, then `rt_writers` writers
/// create `rt_events` records; reports the create rate while they listen, and delivery
/// completeness, order and latency once every subscriber has everything (or the drain ends).
async fn realtime(
    server: &Server,
    options: &Options,
    plan: &Realtime,
) -> Result<Map<String, Value>> {
    const TOPIC: &str = "bench_rt/*";
    let subscribers = plan.subscribers;
    let writers = plan.writers.max(1);
    let connect_started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let counts: Vec<Arc<AtomicU64>> = (0..subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    // The subscribers live on their own generator thread (a runtime of one worker; their
    // connections are driven there too), so that reading a million events does not delay the
    // writers' requests on this one: the create rate then measures the server, not the
    // generator's event parsing. Both threads share the generator's core; the subscribers'
    // thread runs at a lower priority so that the writers' requests go out first (events wait
    // in socket buffers meanwhile; their latency still counts until they are read).
    let consumers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pl-bench-sse")
        .on_thread_start(|| {
            // SAFETY: plain syscall without pointers; affects the calling thread only.
            #[allow(unsafe_code)]
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        })
        .enable_all()
        .build()
        .context("starting the subscribers' runtime")?;
    let tasks = {
        let server = server.clone();
        let counts = counts.clone();
        let stop_rx = stop_rx.clone();
        consumers
            .spawn(async move {
                use futures::StreamExt;
                let attempts = futures::stream::iter(0..subscribers)
                    .map(|_| Subscriber::connect(&server, TOPIC, writers))
                    .buffered(64);
                futures::pin_mut!(attempts);
                let mut connected = Vec::with_capacity(subscribers);
                while let Some(result) = attempts.next().await {
                    connected.push(result.with_context(|| {
                        format!("subscriber {} of {subscribers}", connected.len() + 1)
                    })?);
                }
                let mut tasks = Vec::with_capacity(subscribers);
                for (subscriber, count) in connected.into_iter().zip(&counts) {
                    let count = Arc::clone(count);
                    let stop = stop_rx.clone();
                    tasks.push(tokio::spawn(async move {
                        subscriber.consume(TOPIC, count, stop).await
                    }));
                }
                Ok::<_, anyhow::Error>(tasks)
            })
            .await
    };
    let tasks = match tasks {
        Ok(Ok(tasks)) => tasks,
        Ok(Err(err)) => {
            consumers.shutdown_background();
            return Err(err);
        }
        Err(err) => {
            consumers.shutdown_background();
            bail!("the subscribers' task failed: {err}");
        }
    };
    let connect_s = connect_started.elapsed().as_secs_f64();
    let memory_subscribed = server.pid.and_then(super::stats::proc_memory_kb);

    // Writers.
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let cpu_before = server.pid.and_then(proc_cpu_us);
    let started = Instant::now();
    let pace = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
    let mut writer_tasks = Vec::new();
    for w in 0..writers {
        let s = server.clone();
        let next = Arc::clone(&next);
        let acked = Arc::clone(&acked);
        let total = plan.events;
        writer_tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let url = s.url("/api/collections/bench_rt/records");
            let mut n = 0u64;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                if let Some(every) = pace {
                    // Create number `index` goes out at `started + index × every`.
                    tokio::time::sleep_until((started + every * index as u32).into()).await;
                }
                let sent = Instant::now();
                let request = s
                    .http
                    .post(url.as_str())
                    .json(&json!({"w": w, "n": n, "t": now_us(), "title": "fan-out"}));
                let outcome = s.fire(request).await;
                if outcome == Ok(200) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                recorder.record(sent.elapsed(), outcome);
                n += 1;
            }
            recorder
        }));
    }
    let mut creates = Recorder::default();
    for task in writer_tasks {
        if let Ok(recorder) = task.await {
            creates.merge(recorder);
        }
    }
    let create_elapsed = started.elapsed();
    let acked = acked.load(Ordering::Relaxed);
    let expected = acked * subscribers as u64;
    let drain_deadline = Instant::now() + options.rt_drain;
    loop {
        let delivered: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if delivered >= expected || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_delivered_s = started.elapsed().as_secs_f64();
    let cpu_after = server.pid.and_then(proc_cpu_us);
    let answered = creates.latencies_us.len() as u64;
    let mut out = creates.summary(create_elapsed);
    cpu_per_request_into(&mut out, cpu_before, cpu_after, answered);
    memory_into(&mut out, server.pid);
    let _ = stop_tx.send(true);
    let mut total = SubscriberReport::default();
    let mut complete = 0u64;
    for task in tasks {
        if let Ok(report) = task.await {
            if report.received >= acked {
                complete += 1;
            }
            total.received += report.received;
            total.out_of_order += report.out_of_order;
            total.duplicates += report.duplicates;
            total.latencies_us.extend(report.latencies_us);
        }
    }
    out.insert("subscribers".into(), json!(subscribers));
    out.insert("writers".into(), json!(writers));
    out.insert("rate_per_s".into(), json!(plan.rate));
    out.insert("connect_s".into(), json!(round1(connect_s)));
    if let Some((_, rss)) = memory_subscribed {
        out.insert(
            "server_rss_subscribed_mb".into(),
            json!(round1(rss as f64 / 1024.0)),
        );
    }
    out.insert("events_acked".into(), json!(acked));
    out.insert("deliveries_expected".into(), json!(expected));
    out.insert("deliveries".into(), json!(total.received));
    out.insert("subscribers_complete".into(), json!(complete));
    out.insert("out_of_order".into(), json!(total.out_of_order));
    out.insert("duplicates".into(), json!(total.duplicates));
    out.insert("all_delivered_s".into(), json!(round1(all_delivered_s)));
    percentiles_into(&mut out, "delivery_", &mut total.latencies_us);
    consumers.shutdown_background();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_the_exact_size_and_differs_per_record() {
        assert_eq!(filler(1, BODY_1K).len(), BODY_1K);
        assert_eq!(filler(2, BODY_3K).len(), BODY_3K);
        assert_ne!(filler(1, 200), filler(2, 200));
    }

    #[test]
    fn picks_cover_the_whole_table() {
        let len = 100_000;
        let mut seen = std::collections::HashSet::new();
        for i in 0..50_000u64 {
            let at = pick((i % 64) as usize, i, len);
            assert!(at < len);
            seen.insert(at);
        }
        // Random ids over the whole table, not a hot set.
        assert!(seen.len() > 30_000, "{}", seen.len());
        assert!(seen.iter().any(|&at| at > 90_000));
    }
}
