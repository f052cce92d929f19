//! One realtime client ("session"): its subscriptions, bound auth, delivery cursor and the
//! bounded queue of frames waiting for its SSE stream.
//!
//! 1. `inner` (an async mutex) guards everything that decides *what* is delivered: cursor,
//!    mode, subscriptions, auth. Rendering a commit for the session happens under it, so the
//!    dispatcher and a catch-up task can never both deliver the same commit.
//! 2. `queue` (a plain mutex, never held across an await) holds rendered frames. It is bounded
//!    by [`RealtimeOptions::queue_frames_max`] and `queue_bytes_max`; a commit whose frames do
//!    not fit is not queued at all (all or nothing), and the session switches to catch-up.
//! 3. Every (re)connection bumps `generation`; a stream whose generation is stale ends.
//! 4. A stream on which the bound auth has not proven itself (`auth_proven`) receives no
//!    events: see [`Mode::Held`].

use super::sse::Frame;
use super::topic::Topic;
use super::RealtimeOptions;
use crate::access::Auth;
use axum::body::Bytes;
use engine::Seq;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Most bytes [`Session::pop`] joins into one chunk.
pub const POP_BYTES_MAX: usize = 64 * 1024;

/// How a session receives commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The dispatcher renders each commit for it as it is published.
    Live,
    /// A catch-up task reads the log from `cursor`; the dispatcher takes over once the cursor
    /// reaches the commit it is dispatching.
    CatchUp,
    /// No stream is attached: nothing is rendered until the client resumes.
    Parked,
    /// The session was resumed by a request that only named it, and the commit at `cursor`
    /// has frames for its bound auth: nothing is rendered (the cursor keeps
    /// the backlog, in the engine's memory or the log) until the bound auth proves itself on
    /// this stream, or the session stops being bound (then it continues as a guest).
    Held,
}

/// Delivery state, guarded by the session's async mutex.
#[derive(Debug)]
pub struct SessionInner {
    /// The subscription set (replaced as a whole by `POST /api/realtime`).
    pub subscriptions: Arc<Vec<Topic>>,
    /// The set replaced by the last POST and the seq from which `subscriptions` apply:
    /// commits acknowledged before the POST are still rendered with the set they were
    /// committed under.
    pub previous: Option<(Arc<Vec<Topic>>, Seq)>,
    /// The auth bound by the POSTs (`None` = guest): the session's owner.
    pub auth: Option<Auth>,
    /// The bound auth presented itself on the current stream (a POST with its token, or the
    /// resume request's own `Authorization`). False after a resume: knowing a client or
    /// event id is not a credential, so until then the stream gets no events; they wait in
    /// order ([`Mode::Held`]).
    pub auth_proven: bool,
    /// The address that opened the current stream (`None` when the server does not know
    /// peers): `POST /api/realtime` must come from it, as in PocketBase.
    pub stream_ip: Option<std::net::IpAddr>,
    /// How commits reach the session.
    pub mode: Mode,
    /// The next seq to render for this session; every seq below it was rendered (or
    /// deliberately skipped) exactly once.
    pub cursor: Seq,
    /// The cursor when the current stream started: where a resume that names no event
    /// position starts again.
    pub connect_seq: Seq,
    /// The `skip` that applied when the current stream started.
    pub connect_skip: Option<(Seq, u64)>,
    /// Frames of commit `.0` with a part number `<= .1` were already received by the client
    /// (resume from the middle of a multi-event commit).
    pub skip: Option<(Seq, u64)>,
    /// A catch-up task is running for this session.
    pub catch_up_running: bool,
    /// Bumped on every (re)connection.
    pub generation: u64,
    /// Taken over from another cluster node by a resume (`Hub::adopt`): held until its
    /// first subscription POST, whose set then applies from the cursor on.
    pub adopted: bool,
}

impl SessionInner {
    /// The subscription set that applies to commit `seq`.
    pub fn subscriptions_at(&self, seq: Seq) -> &Arc<Vec<Topic>> {
        match &self.previous {
            Some((previous, switch_seq)) if seq < *switch_seq => previous,
            _ => &self.subscriptions,
        }
    }
}

/// The frames waiting for the stream.
#[derive(Debug)]
pub struct Queue {
    frames: VecDeque<Frame>,
    bytes: usize,
    /// The generation of the stream allowed to drain this queue.
    pub generation: u64,
    /// Set on server shutdown: streams end.
    pub ended: bool,
    /// Wakes the stream of the current generation.
    pub readable: Arc<Notify>,
}

/// Outcome of taking from the queue.
#[derive(Debug)]
pub enum Pop {
    /// The next frames (one or more whole frames).
    Frame(Bytes),
    /// Nothing buffered.
    Empty(Arc<Notify>),
    /// This stream is over (superseded or shut down).
    Ended,
}

/// One realtime client.
#[derive(Debug)]
pub struct Session {
    /// The 40-character client id.
    pub id: String,
    /// Delivery state.
    pub inner: tokio::sync::Mutex<SessionInner>,
    queue: Mutex<Queue>,
    /// Signalled when the queue drains (catch-up waits on it for room).
    pub writable: Notify,
    /// Milliseconds since the epoch at which the stream went away (0 = connected).
    pub parked_since_ms: AtomicU64,
    frames_max: usize,
    bytes_max: usize,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl Session {
    /// A new session positioned at `cursor`.
    pub fn new(id: String, cursor: Seq, mode: Mode, options: &RealtimeOptions) -> Session {
        Session {
            id,
            inner: tokio::sync::Mutex::new(SessionInner {
                subscriptions: Arc::new(Vec::new()),
                previous: None,
                auth: None,
                auth_proven: false,
                stream_ip: None,
                mode,
                cursor,
                connect_seq: cursor,
                connect_skip: None,
                skip: None,
                catch_up_running: false,
                generation: 0,
                adopted: false,
            }),
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                bytes: 0,
                generation: 0,
                ended: false,
                readable: Arc::new(Notify::new()),
            }),
            writable: Notify::new(),
            parked_since_ms: AtomicU64::new(if mode == Mode::Parked { now_ms() } else { 0 }),
            frames_max: options.queue_frames_max.max(1),
            bytes_max: options.queue_bytes_max.max(1),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("session queue lock")
    }

    /// Queues all `frames` or none. An empty queue always accepts (so a commit larger than
    /// the bound still makes progress); otherwise the frame and byte bounds apply.
    pub fn try_push(&self, frames: Vec<Frame>) -> bool {
        let pushed = self.try_push_quiet(frames);
        self.notify_readable();
        pushed
    }

    /// [`Session::try_push`] without waking the stream: the dispatcher queues the frames of
    /// several commits and wakes it once with [`Session::notify_readable`].
    pub fn try_push_quiet(&self, frames: Vec<Frame>) -> bool {
        if frames.is_empty() {
            return true;
        }
        let added: usize = frames.iter().map(|f| f.len(self.id.len())).sum();
        let mut queue = self.queue();
        let fits = queue.frames.is_empty()
            || (queue.frames.len() + frames.len() <= self.frames_max
                && queue.bytes + added <= self.bytes_max);
        if !fits {
            return false;
        }
        queue.bytes += added;
        queue.frames.extend(frames);
        true
    }

    /// Wakes the stream when frames are waiting (then true).
    pub fn notify_readable(&self) -> bool {
        let notify = {
            let queue = self.queue();
            if queue.frames.is_empty() {
                return false;
            }
            Arc::clone(&queue.readable)
        };
        notify.notify_one();
        true
    }

    /// True when at least half of the queue bound is free (catch-up waits for this).
    pub fn has_room(&self) -> bool {
        let queue = self.queue();
        queue.frames.len() * 2 <= self.frames_max && queue.bytes * 2 <= self.bytes_max
    }

    /// Buffered frame count.
    pub fn queued_frames(&self) -> usize {
        self.queue().frames.len()
    }

    /// Takes the next frames for the stream of `generation`: everything buffered up to
    /// [`POP_BYTES_MAX`] (at least one frame), as one chunk, so a stream that fell behind
    /// catches up with one write instead of one per frame.
    pub fn pop(&self, generation: u64) -> Pop {
        let popped = {
            let mut queue = self.queue();
            if queue.ended || queue.generation != generation {
                return Pop::Ended;
            }
            let Some(first) = queue.frames.pop_front() else {
                return Pop::Empty(Arc::clone(&queue.readable));
            };
            let id_len = self.id.len();
            let mut taken = first.len(id_len);
            let mut count = 1;
            for frame in queue.frames.iter() {
                let len = frame.len(id_len);
                if taken + len > POP_BYTES_MAX {
                    break;
                }
                taken += len;
                count += 1;
            }
            let chunk = match first {
                Frame::Raw(bytes) if count == 1 => bytes,
                first => {
                    let mut chunk = Vec::with_capacity(taken);
                    first.write_to(&self.id, &mut chunk);
                    for frame in queue.frames.drain(..count - 1) {
                        frame.write_to(&self.id, &mut chunk);
                    }
                    Bytes::from(chunk)
                }
            };
            queue.bytes -= taken;
            chunk
        };
        self.writable.notify_waiters();
        Pop::Frame(popped)
    }

    /// Starts a new stream generation: clears the queue, queues `first` frames, and wakes
    /// (and thereby ends) the previous stream.
    pub fn attach(&self, generation: u64, first: Vec<Bytes>) {
        let old = {
            let mut queue = self.queue();
            queue.frames.clear();
            queue.bytes = first.iter().map(Bytes::len).sum();
            queue.frames.extend(first.into_iter().map(Frame::Raw));
            queue.generation = generation;
            std::mem::replace(&mut queue.readable, Arc::new(Notify::new()))
        };
        self.parked_since_ms.store(0, Ordering::Release);
        old.notify_one();
        self.writable.notify_waiters();
    }

    /// Drops buffered frames when the stream of `generation` went away; false when a newer
    /// stream already took over.
    pub fn detach(&self, generation: u64) -> bool {
        let mut queue = self.queue();
        if queue.generation != generation {
            return false;
        }
        queue.frames.clear();
        queue.bytes = 0;
        queue.generation = generation.wrapping_add(u64::MAX / 2);
        self.parked_since_ms
            .store(now_ms().max(1), Ordering::Release);
        true
    }

    /// Ends every stream of this session (server shutdown).
    pub fn end(&self) {
        let notify = {
            let mut queue = self.queue();
            queue.ended = true;
            Arc::clone(&queue.readable)
        };
        notify.notify_one();
        self.writable.notify_waiters();
    }

    /// True when no stream is attached.
    pub fn is_parked(&self) -> bool {
        self.parked_since_ms.load(Ordering::Acquire) != 0
    }
}
