//! Fan-out of committed commits to subscribers, in seq order, with no gap.
//!
//! 1. The hub keeps the most recent commits in a bounded ring; memory never grows with the
//!    number or slowness of subscribers.
//! 2. A subscription whose next seq has left the ring reads it from the log instead, so a slow
//!    subscriber is never dropped and never misses a commit.
//! 3. Only durable commits are ever published.
//! 4. Waiting works both blocking ([`Subscription::wait`]) and async ([`Subscription::poll_ready`])
//!    without tying the engine to any runtime.

use crate::commit::{Commit, Seq};
use crate::error::Result;
use crate::log::LogReader;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Default number of recent commits the hub keeps in memory.
pub(crate) const HUB_RING_COMMITS_DEFAULT: usize = 4096;

struct HubState {
    ring: VecDeque<Arc<Commit>>,
    last_seq: Seq,
    wakers: Vec<Waker>,
    closed: bool,
}

pub(crate) struct Hub {
    state: Mutex<HubState>,
    condvar: Condvar,
    capacity: usize,
}

impl Hub {
    pub(crate) fn new(last_seq: Seq, capacity: usize) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                ring: VecDeque::new(),
                last_seq,
                wakers: Vec::new(),
                closed: false,
            }),
            condvar: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn publish(&self, commits: Vec<Arc<Commit>>) {
        if commits.is_empty() {
            return;
        }
        let wakers = {
            let mut state = self.state.lock().expect("hub lock");
            for commit in commits {
                state.last_seq = commit.seq;
                state.ring.push_back(commit);
                if state.ring.len() > self.capacity {
                    state.ring.pop_front();
                }
            }
            std::mem::take(&mut state.wakers)
        };
        self.condvar.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Replaces every commit of the in-memory ring that `rewrite` returns a new version of
    /// (a redaction erases values from the recent commits too).
    pub(crate) fn rewrite_ring(&self, rewrite: impl Fn(&Commit) -> Option<Commit>) {
        let mut state = self.state.lock().expect("hub lock");
        for commit in state.ring.iter_mut() {
            if let Some(new) = rewrite(commit) {
                *commit = Arc::new(new);
            }
        }
    }

    pub(crate) fn close(&self) {
        let wakers = {
            let mut state = self.state.lock().expect("hub lock");
            state.closed = true;
            std::mem::take(&mut state.wakers)
        };
        self.condvar.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn last_seq(&self) -> Seq {
        self.state.lock().expect("hub lock").last_seq
    }

    /// Up to `max` published commits from `from` on, when `from` is still in the ring
    /// (`None` when it left it, so the caller reads the log; empty when nothing is published
    /// at `from` yet).
    pub(crate) fn recent(&self, from: Seq, max: usize) -> Option<Vec<Arc<Commit>>> {
        let state = self.state.lock().expect("hub lock");
        if from > state.last_seq {
            return Some(Vec::new());
        }
        let front = state.ring.front()?;
        if front.seq > from {
            return None;
        }
        let skip = usize::try_from(from - front.seq).ok()?;
        Some(state.ring.iter().skip(skip).take(max).cloned().collect())
    }
}

/// A position in the commit stream that yields every later commit, in order.
pub struct Subscription {
    hub: Arc<Hub>,
    log: LogReader,
    next_seq: Seq,
}

impl Subscription {
    pub(crate) fn new(hub: Arc<Hub>, log: LogReader, next_seq: Seq) -> Subscription {
        Subscription { hub, log, next_seq }
    }

    /// The seq of the next commit this subscription yields.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// Takes up to `max` available commits without blocking (possibly none). Commits that have
    /// left the in-memory ring are read from the log.
    pub fn try_next_batch(&mut self, max: usize) -> Result<Vec<Arc<Commit>>> {
        let from_ring = {
            let state = self.hub.state.lock().expect("hub lock");
            if self.next_seq > state.last_seq {
                return Ok(Vec::new());
            }
            match state.ring.front() {
                Some(front) if front.seq <= self.next_seq => {
                    let skip = (self.next_seq - front.seq) as usize;
                    let batch: Vec<Arc<Commit>> =
                        state.ring.iter().skip(skip).take(max).cloned().collect();
                    Some(batch)
                }
                _ => None,
            }
        };
        let batch = match from_ring {
            Some(batch) => batch,
            None => self
                .log
                .read_from(self.next_seq, max)?
                .into_iter()
                .map(Arc::new)
                .collect(),
        };
        if let Some(last) = batch.last() {
            self.next_seq = last.seq + 1;
        }
        Ok(batch)
    }

    /// True when a commit at `next_seq` is available or the hub is closed.
    fn ready(&self, state: &HubState) -> bool {
        state.closed || state.last_seq >= self.next_seq
    }

    /// Blocks until a commit is available, the hub closes or the timeout passes.
    pub fn wait(&self, timeout: Duration) {
        let state = self.hub.state.lock().expect("hub lock");
        if self.ready(&state) {
            return;
        }
        let _unused = self
            .hub
            .condvar
            .wait_timeout_while(state, timeout, |state| !self.ready(state))
            .expect("hub lock");
    }

    /// Async readiness: `Ready` when a commit is available (or the engine closed).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.hub.state.lock().expect("hub lock");
        if self.ready(&state) {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// True once the engine has shut down.
    pub fn is_closed(&self) -> bool {
        self.hub.state.lock().expect("hub lock").closed
    }
}
