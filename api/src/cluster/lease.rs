//! The leader lease: compare-and-set on a one-subject JetStream stream with a max age.
//!
//! (JetStream's KV buckets are this same construction; the bucket API of the client does not
//! speak to the NATS 2.9 servers Debian ships, so the lease uses the stream primitives
//! directly.) The stream keeps one message per subject, dropped after [`super::LEASE_TTL`]:
//! - the lease is held while its last message is live and not empty; its stream sequence is
//!   the lease's *revision*;
//! - taking it publishes with `Nats-Expected-Last-Subject-Sequence` = the revision seen free
//!   (0 when there is no message), renewing with the revision held: a stale writer gets
//!   "wrong last sequence" and knows it lost the lease;
//! - giving it up publishes an empty message with the held revision.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// A cluster's lease stream.
pub struct Lease {
    js: jetstream::Context,
    stream: String,
    subject: String,
}

/// The lease as last written: its value (None: released or expired) and revision.
pub struct Entry {
    pub value: Option<Vec<u8>>,
    pub revision: u64,
}

fn is_wrong_sequence(err: &impl std::fmt::Display) -> bool {
    err.to_string().contains("wrong last sequence")
}

impl Lease {
    /// Opens (or creates) the lease stream of `cluster`.
    pub async fn open(
        js: &jetstream::Context,
        cluster: &str,
        replicas: usize,
        ttl: Duration,
    ) -> anyhow::Result<Lease> {
        let name = super::bucket_name(cluster).to_uppercase();
        let subject = format!("pl.{cluster}.lease");
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            description: Some(format!("pocketlog leader lease of cluster {cluster}")),
            storage: stream::StorageType::File,
            num_replicas: replicas.max(1),
            max_messages_per_subject: 1,
            max_age: ttl,
            duplicate_window: ttl.min(Duration::from_secs(1)),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|err| anyhow::anyhow!("cannot open the lease stream {name}: {err}"))?;
        Ok(Lease {
            js: js.clone(),
            stream: name,
            subject,
        })
    }

    /// The lease's last message, if any is live.
    pub async fn entry(&self) -> anyhow::Result<Option<Entry>> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|err| anyhow::anyhow!("lease stream: {err}"))?;
        match stream.get_last_raw_message_by_subject(&self.subject).await {
            Ok(message) => Ok(Some(Entry {
                value: (!message.payload.is_empty()).then(|| message.payload.to_vec()),
                revision: message.sequence,
            })),
            Err(err) if err.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(anyhow::anyhow!("reading the lease: {err}")),
        }
    }

    /// Publishes `value` if the lease's last revision is `expected` (0: none). `Ok(None)`
    /// when another writer got there first.
    async fn put(&self, value: Vec<u8>, expected: u64) -> anyhow::Result<Option<u64>> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(value.into())
            .expected_last_subject_sequence(expected);
        let ack = match self.js.send_publish(self.subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(err) if is_wrong_sequence(&err) => return Ok(None),
            Err(err) => return Err(anyhow::anyhow!("writing the lease: {err}")),
        };
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(err) if is_wrong_sequence(&err) => Ok(None),
            Err(err) => Err(anyhow::anyhow!("writing the lease: {err}")),
        }
    }

    /// Takes the lease when it is free: `Some(revision)` when this writer got it.
    pub async fn create(&self, value: Vec<u8>) -> anyhow::Result<Option<u64>> {
        let expected = match self.entry().await? {
            Some(Entry { value: Some(_), .. }) => return Ok(None),
            Some(Entry {
                value: None,
                revision,
            }) => revision,
            None => 0,
        };
        self.put(value, expected).await
    }

    /// Renews (or rewrites) the lease held at `revision`: `Some(new revision)`, or `None`
    /// when it is no longer this writer's.
    pub async fn update(&self, value: Vec<u8>, revision: u64) -> anyhow::Result<Option<u64>> {
        self.put(value, revision).await
    }

    /// Gives the lease held at `revision` up.
    pub async fn release(&self, revision: u64) -> anyhow::Result<()> {
        self.put(Vec::new(), revision).await.map(drop)
    }
}
