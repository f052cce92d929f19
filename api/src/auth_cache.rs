//! A bounded cache of verified callers, so that a signed-in request costs a hash lookup instead
//! of a SQLite read of the caller's record plus an HMAC check (issue #21: authentication was
//! 11.7% of a signed-in view, 9.0% of it the record lookup).
//!
//! Keyed by the raw token; an entry holds the resolved [`Auth`] and the token's `exp`.
//!
//! Invariants:
//! 1. **A revoked token fails at once.** Every commit that can change whether a token is
//!    valid or what its caller looks like — an update or delete of a record in an auth
//!    collection, any collection change (token secrets and durations live in the collection) —
//!    bumps the generation and empties the cache in [`crate::state::AppState::follow`], which
//!    runs before the write's answer is sent. So once a client has seen its password change,
//!    logout-all or deletion acknowledged, no request is answered from an entry made before.
//! 2. **No stale fill.** A request that read the caller's record before such a commit could
//!    otherwise insert it after the commit emptied the cache: [`AuthCache::insert`] takes the
//!    generation observed *before* the read and drops the entry when it has changed since.
//! 3. **Expiry is checked on every hit** (`now < exp`, as [`crate::auth::token::verify`]).
//! 4. **Bounded:** at most [`CAPACITY`] entries; a full cache is emptied (the working set of
//!    clients refills it at one read each). Nothing is cached for guests or invalid tokens, so
//!    junk tokens cannot grow it.

use crate::access::Auth;
use crate::model::Schema;
use engine::{Change, Commit};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Most cached callers.
pub const CAPACITY: usize = 4096;

struct Entry {
    auth: Auth,
    exp: i64,
}

/// The cache (one per server, in `AppState`).
#[derive(Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<String, Entry>>,
    generation: AtomicU64,
    /// Ids of the auth collections (set before each schema swap, so a cached caller's
    /// collection is always in it).
    auth_collections: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl AuthCache {
    /// The current generation; read it before loading a record to cache.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached caller of `raw`, if it is cached and not expired at `now_unix`.
    pub fn get(&self, raw: &str, now_unix: i64) -> Option<Auth> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(raw)?;
        (now_unix < entry.exp).then(|| entry.auth.clone())
    }

    /// Caches a verified caller, unless the generation moved past `generation` (invariant 2).
    pub fn insert(&self, raw: &str, auth: Auth, exp: i64, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the write lock: `invalidate` bumps the generation before it takes the
        // lock, so an insert that sees the old generation here lands before the clear.
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(raw.to_string(), Entry { auth, exp });
    }

    /// Forgets every entry (invariant 1).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Records which collections are auth collections; call before the schema is swapped in.
    pub fn set_schema(&self, schema: &Schema) {
        let ids = schema
            .collections
            .iter()
            .filter(|collection| collection.is_auth())
            .map(|collection| collection.id.clone())
            .collect();
        *self
            .auth_collections
            .write()
            .unwrap_or_else(|e| e.into_inner()) = ids;
    }

    /// Whether `commit` can change a caller: an update or delete of an auth record, or any
    /// collection change.
    pub fn changes_callers(&self, commit: &Commit) -> bool {
        let auth = self
            .auth_collections
            .read()
            .unwrap_or_else(|e| e.into_inner());
        commit.changes.iter().any(|change| match change {
            Change::CollectionCreated(_)
            | Change::CollectionUpdated(_)
            | Change::CollectionDeleted { .. } => true,
            Change::RecordUpdated { collection_id, .. }
            | Change::RecordDeleted { collection_id, .. }
            | Change::Redacted { collection_id, .. } => auth.contains(collection_id),
            _ => false,
        })
    }

    /// Invalidates the cache when `commit` can change a caller (invariant 1). Runs on the
    /// writer thread as each commit becomes durable, before its answer can be sent (and on a
    /// replica right after a replicated batch is applied). Never call it before the commit is
    /// visible to readers: a read between the bump and the commit would cache the old record.
    pub fn observe(&self, commit: &Commit) {
        if self.changes_callers(commit) {
            self.invalidate();
        }
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Collection;
    use serde_json::{json, Map, Value};
    use std::sync::Arc;

    fn auth(id: &str) -> Auth {
        let collection = Collection::from_meta(
            &json!({"id": "_pb_users_auth_", "name": "users", "type": "auth", "fields": []})
                .to_string(),
        )
        .expect("collection");
        let mut record = Map::new();
        record.insert("id".into(), Value::String(id.into()));
        Auth {
            collection: Arc::new(collection),
            record,
        }
    }

    #[test]
    fn hit_until_expiry() {
        let cache = AuthCache::default();
        cache.insert("t", auth("a"), 100, cache.generation());
        assert_eq!(
            cache.get("t", 99).map(|a| a.id().to_string()),
            Some("a".into())
        );
        assert!(cache.get("t", 100).is_none(), "exp is exclusive");
        assert!(cache.get("other", 0).is_none());
    }

    #[test]
    fn invalidate_empties_and_refuses_fills_from_before() {
        let cache = AuthCache::default();
        let before = cache.generation();
        cache.insert("t", auth("a"), 100, before);
        cache.invalidate();
        assert!(cache.get("t", 0).is_none());
        // A read that started before the invalidation must not fill the cache.
        cache.insert("t", auth("a"), 100, before);
        assert!(cache.is_empty());
        cache.insert("t", auth("a"), 100, cache.generation());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn bounded() {
        let cache = AuthCache::default();
        let generation = cache.generation();
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("t{i}"), auth("a"), 100, generation);
        }
        assert!(cache.len() <= CAPACITY);
    }
}
