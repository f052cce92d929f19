//! Property: under random interleavings of writes, disconnects (with frames possibly cut in
//! flight) and resumes, each client's received events equal the log filtered by its
//! subscriptions — one event per matching subscription, in log order, no gap, no duplicate.
//!
//! Method: proptest over short op sequences (few cases: each starts a server); the expected
//! sequence is computed from the engine's log at the end. A failing case prints its ops.

mod realtime_support;

use api::ServerOptions;
use engine::Change;
use proptest::prelude::*;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Drop(usize),
    Resume(usize),
}

const CLIENTS: [&[&str]; 4] = [&["a/*"], &["b/*"], &["a/*", "b/*"], &["a/*", "a"]];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2).prop_map(Op::Write),
        1 => (0usize..CLIENTS.len()).prop_map(Op::Drop),
        1 => (0usize..CLIENTS.len()).prop_map(Op::Resume),
    ]
}

struct Client {
    sse: Option<Sse>,
    id: String,
    last_id: String,
    received: Vec<(u64, String)>,
}

impl Client {
    async fn drain(&mut self, wait: Duration) {
        if let Some(sse) = self.sse.as_mut() {
            while let Some(frame) = sse.next(wait).await {
                self.received.push((frame.seq(), frame.event.clone()));
            }
            self.last_id = sse.last_id.clone();
        }
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    for name in ["a", "b"] {
        server
            .create_collection(
                json!({"name": name, "type": "base", "listRule": "", "viewRule": "",
                "createRule": "", "fields": [{"name": "n", "type": "number"}]}),
            )
            .await;
    }
    let start = server.state.engine.published_seq();
    let mut clients = Vec::new();
    for topics in CLIENTS {
        let (sse, _) = Sse::connect(&server.addr, None).await;
        let id = sse.client_id.clone();
        assert_eq!(server.subscribe(&id, topics, None).await, 204);
        clients.push(Client {
            last_id: id.clone(),
            sse: Some(sse),
            id,
            received: Vec::new(),
        });
    }
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Write(collection) => {
                let name = ["a", "b"][*collection];
                server.create(name, json!({"n": index}), None).await;
            }
            Op::Drop(client) => {
                let client = &mut clients[*client];
                client.drain(Duration::from_millis(5)).await;
                if client.sse.take().is_some() {
                    wait_parked(&server, &client.id).await;
                }
            }
            Op::Resume(client) => {
                let client = &mut clients[*client];
                if client.sse.is_none() {
                    let (sse, _) = Sse::connect(&server.addr, Some(&client.last_id)).await;
                    prop_assert_eq!(&sse.client_id, &client.id);
                    client.sse = Some(sse);
                }
            }
        }
    }
    // Expected: the log after setup, filtered per client.
    let commits = server
        .state
        .engine
        .log()
        .read_from(start + 1, 10_000)
        .expect("log");
    let collection_id = |name: &str| {
        server
            .state
            .schema()
            .find(name)
            .map(|c| c.id.clone())
            .expect("collection")
    };
    let (a_id, b_id) = (collection_id("a"), collection_id("b"));
    for (client, topics) in clients.iter_mut().zip(CLIENTS) {
        if client.sse.is_none() {
            let (sse, _) = Sse::connect(&server.addr, Some(&client.last_id)).await;
            client.sse = Some(sse);
        }
        let mut expected = Vec::new();
        for commit in &commits {
            for change in &commit.changes {
                let Change::RecordCreated { collection_id, .. } = change else {
                    continue;
                };
                for topic in topics {
                    let wanted = if topic.starts_with('a') { &a_id } else { &b_id };
                    if collection_id == wanted {
                        expected.push((commit.seq, topic.to_string()));
                    }
                }
            }
        }
        while client.received.len() < expected.len() {
            let before = client.received.len();
            client.drain(Duration::from_millis(500)).await;
            if client.received.len() == before {
                break;
            }
        }
        client.drain(Duration::from_millis(50)).await;
        prop_assert_eq!(&client.received, &expected, "client with {:?}", topics);
    }
    server.stop().await;
    Ok(())
}

async fn wait_parked(server: &Server, client_id: &str) {
    for _ in 0..200 {
        if server
            .state
            .realtime
            .session(client_id)
            .is_some_and(|s| s.is_parked())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session {client_id} was not parked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn realtime_resume_interleavings_match_the_log(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
