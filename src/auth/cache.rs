//! What an authenticated request needs, kept in memory: verified access tokens (until
//! they expire) and live sessions with their users (for [`SESSION_TTL`] at most), so
//! that a request with a known token costs neither a signature check nor a database
//! read.
//!
//! Revocation stays immediate: every change the store announces (this process at
//! once, other instances through PostgreSQL `NOTIFY`) is applied before the next
//! lookup, and an entry read from the database while a change was being announced is
//! not kept. Where other processes cannot announce (SQLite: `latch user disable`
//! while serving), the store's fingerprint of the database files is compared on every
//! lookup, and any commit elsewhere empties the session cache (a commit still being
//! made during a lookup can go unnoticed for up to [`SESSION_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::auth::tokens::{AccessClaims, LEEWAY_SECS};
use crate::clock::Clock;
use crate::domain::SessionId;
use crate::store::{Change, Fingerprint, SessionRecord, UserRecord};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// Longest time a session is trusted without reading the database.
pub const SESSION_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most per map; past it the map starts over.
const CAPACITY: usize = 20_000;

/// A live session and its user, as read from the store.
pub type SessionEntry = Arc<(SessionRecord, UserRecord)>;

/// The cache of one server.
pub struct AuthCache {
    state: Mutex<State>,
    fingerprint: Option<Fingerprint>,
    clock: Clock,
}

struct State {
    changes: broadcast::Receiver<Change>,
    /// Keyed by the whole token, hashed with foldhash: SipHash over a 600-byte token
    /// would cost more than the rest of a lookup, and only verified tokens are inserted.
    tokens: HashMap<Box<str>, Arc<AccessClaims>, foldhash::quality::RandomState>,
    /// Session cookie secret → session id; a cookie names one session for good.
    cookies: HashMap<Box<str>, SessionId, foldhash::quality::RandomState>,
    sessions: HashMap<SessionId, (SessionEntry, Instant)>,
    /// Counts applied changes; a database read that saw another generation start
    /// may be stale and is not stored.
    generation: u64,
    /// The store's fingerprint at the last lookup.
    seen: u64,
}

impl State {
    /// Applies every change announced so far.
    fn catch_up(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(change) => self.apply(change),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
                Err(TryRecvError::Lagged(_)) => self.apply(Change::All),
            }
        }
    }

    fn apply(&mut self, change: Change) {
        self.generation += 1;
        match change {
            Change::Session(id) => {
                self.sessions.remove(&id);
            }
            Change::User(id) => self.sessions.retain(|_, (entry, _)| entry.1.id != id),
            Change::All => self.sessions.clear(),
            Change::Keys | Change::Clients => {}
        }
    }
}

impl AuthCache {
    /// A cache following `changes`, and `fingerprint` where the store has one.
    pub fn new(changes: broadcast::Receiver<Change>, fingerprint: Option<Fingerprint>, clock: Clock) -> Self {
        let seen = fingerprint.as_ref().map_or(0, |f| f());
        Self {
            fingerprint,
            clock,
            state: Mutex::new(State {
                changes,
                tokens: HashMap::default(),
                cookies: HashMap::default(),
                sessions: HashMap::new(),
                generation: 0,
                seen,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.catch_up();
        state
    }

    /// Like [`AuthCache::lock`], and first notices commits by other processes (see
    /// `store::file_watch`), for lookups whose answer such a commit could change.
    fn lock_fresh(&self) -> MutexGuard<'_, State> {
        let fingerprint = self.fingerprint.as_ref().map(|f| f());
        let mut state = self.lock();
        if let Some(now) = fingerprint
            && now != state.seen
        {
            state.seen = now;
            state.apply(Change::All);
        }
        state
    }

    /// The claims of an access token verified before, not yet expired, and signed by a
    /// key that is still trusted.
    pub fn token(&self, token: &str) -> Option<Arc<AccessClaims>> {
        let claims = self.lock().tokens.get(token).cloned()?;
        let now = self.clock.now().unix();
        // The same bound as verification, without overflow for a far-off `exp`.
        (claims.exp.saturating_add(LEEWAY_SECS as i64) >= now && claims.key_still_trusted()).then_some(claims)
    }

    pub fn insert_token(&self, token: &str, claims: Arc<AccessClaims>) {
        let mut state = self.lock();
        if state.tokens.len() >= CAPACITY {
            state.tokens.clear();
        }
        state.tokens.insert(token.into(), claims);
    }

    /// The session a cookie secret was found to name before.
    pub fn cookie(&self, secret: &str) -> Option<SessionId> {
        self.lock().cookies.get(secret).copied()
    }

    pub fn insert_cookie(&self, secret: &str, session: SessionId) {
        let mut state = self.lock();
        if state.cookies.len() >= CAPACITY {
            state.cookies.clear();
        }
        state.cookies.insert(secret.into(), session);
    }

    /// A session read less than [`SESSION_TTL`] ago, with no change announced since.
    pub fn session(&self, id: SessionId) -> Option<SessionEntry> {
        let state = self.lock_fresh();
        let (entry, fetched) = state.sessions.get(&id)?;
        (fetched.elapsed() < SESSION_TTL).then(|| entry.clone())
    }

    /// The generation to hand back to [`AuthCache::insert_session`] after a read.
    pub fn generation(&self) -> u64 {
        self.lock_fresh().generation
    }

    /// Keeps a session read from the store, unless a change was announced since
    /// `generation` (the read may predate it).
    pub fn insert_session(&self, generation: u64, entry: SessionEntry) {
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if state.sessions.len() >= CAPACITY {
            state.sessions.clear();
        }
        state.sessions.insert(entry.0.id, (entry, Instant::now()));
    }

    /// Replaces a cached session after its `last_seen_at` moved, keeping its age.
    pub fn update_session(&self, entry: SessionEntry) {
        let mut state = self.lock();
        if let Some(slot) = state.sessions.get_mut(&entry.0.id) {
            slot.0 = entry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn entry(user: UserId) -> SessionEntry {
        let now = Clock::system().now();
        let session = SessionRecord {
            id: SessionId::generate(),
            user_id: user,
            client_id: "latch".into(),
            user_agent: None,
            ip: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now,
            scope: "openid".into(),
            delegated: false,
            amr: "pwd".into(),
        };
        let user = UserRecord {
            id: user,
            username: "u".into(),
            email: "u@example.com".into(),
            email_verified: false,
            password_hash: String::new(),
            roles: String::new(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        Arc::new((session, user))
    }

    #[test]
    fn announced_changes_apply_before_the_next_lookup() {
        let (tx, rx) = broadcast::channel(16);
        let cache = AuthCache::new(rx, None, Clock::system());
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let (a1, a2, b1) = (entry(alice), entry(alice), entry(bob));
        for e in [&a1, &a2, &b1] {
            cache.insert_session(cache.generation(), e.clone());
        }
        assert!(cache.session(a1.0.id).is_some());
        tx.send(Change::Session(a1.0.id)).unwrap();
        assert!(cache.session(a1.0.id).is_none());
        assert!(cache.session(a2.0.id).is_some());
        tx.send(Change::User(alice)).unwrap();
        assert!(cache.session(a2.0.id).is_none());
        assert!(cache.session(b1.0.id).is_some());
        tx.send(Change::All).unwrap();
        assert!(cache.session(b1.0.id).is_none());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let (tx, rx) = broadcast::channel(16);
        let cache = AuthCache::new(rx, None, Clock::system());
        let e = entry(UserId::generate());
        let generation = cache.generation();
        tx.send(Change::User(UserId::generate())).unwrap();
        cache.insert_session(generation, e.clone());
        assert!(cache.session(e.0.id).is_none());
    }
}
