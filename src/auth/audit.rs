//! What the services know of the audit log: they make [`AuditEvent`]s with the time of
//! the [`Clock`] and the client they act for, hand those of a change to the store
//! (which writes them in the change's transaction), and record those that change
//! nothing here. Reading and pruning live here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::sessions::Client;
use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::store::{Actor, AuditEvent, EventQuery, EventRecord, EventType, Store, StoreError};

/// How long an over-limit refusal for one account and address is recorded once: an
/// attacker who keeps hammering a limit must not turn each refused request into a
/// write.
const REFUSAL_QUIET: time::Duration = time::Duration::minutes(1);

/// Keys remembered for [`REFUSAL_QUIET`]; past them (thousands of accounts or address
/// groups refused within a minute), further such events are counted by the metrics and
/// logged at debug level only, so that an attack cannot turn into a write per request.
const MAX_QUIET_KEYS: usize = 1_000;

/// The audit log's service. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
    clock: Clock,
    retention: std::time::Duration,
    refusals: Arc<Mutex<HashMap<String, Timestamp>>>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>, clock: Clock, retention: std::time::Duration) -> Self {
        Self { store, clock, retention, refusals: Arc::default() }
    }

    /// A new event of `kind` by `actor`, now.
    pub fn event(&self, kind: EventType, actor: Actor) -> AuditEvent {
        AuditEvent::new(kind, actor, self.clock.now())
    }

    /// A new event of `kind` by `actor`, now, from `client`'s address and user agent.
    pub fn event_from(&self, kind: EventType, actor: Actor, client: Client<'_>) -> AuditEvent {
        let mut event = self.event(kind, actor);
        event.ip = client.ip.map(|ip| ip.to_string());
        event.user_agent = client.user_agent.map(truncate_user_agent);
        event
    }

    /// Writes an event that records no change. A failure to write is logged, with the
    /// event, and does not fail the request it describes.
    pub async fn record(&self, event: AuditEvent) {
        if let Err(e) = self.store.record_event(&event).await {
            event.log();
            tracing::warn!(error = %e, "could not write an audit event");
        }
    }

    /// Records an event that an attacker could repeat at will (a refusal over a limit,
    /// the right password of a disabled account) at most once per [`REFUSAL_QUIET`] for
    /// the same type, subject, address group (IPv6 by /64, as the limits count them)
    /// and limit or reason on this instance.
    pub async fn record_quietly(&self, event: AuditEvent) {
        let address = event.ip.as_deref().and_then(|ip| ip.parse().ok()).map(crate::auth::limits::address_key);
        let detail = |name: &str| event.details.get(name).and_then(|l| l.as_str()).unwrap_or_default().to_owned();
        let key = format!(
            "{}|{}|{}|{}|{}",
            event.kind.as_str(),
            event.user_id.map(|u| u.to_string()).unwrap_or_default(),
            address.unwrap_or_default(),
            detail("limit"),
            detail("reason"),
        );
        let now = event.at;
        {
            // A panic elsewhere while holding the map leaves it usable.
            let mut quiet = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if quiet.get(&key).is_some_and(|&at| now - at < REFUSAL_QUIET) {
                return;
            }
            if quiet.len() >= MAX_QUIET_KEYS {
                quiet.retain(|_, at| now - *at < REFUSAL_QUIET);
                if quiet.len() >= MAX_QUIET_KEYS {
                    tracing::debug!(audit = event.kind.as_str(), "not recorded: too many alike this minute");
                    return;
                }
            }
            quiet.insert(key, now);
        }
        self.record(event).await;
    }

    /// A page of events, newest first.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.store.events(query).await
    }

    /// Deletes the events older than the retention; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        self.store.delete_events_before(self.clock.now() - self.retention).await
    }
}

/// A user agent as recorded: at most 512 bytes, cut at a character boundary.
fn truncate_user_agent(ua: &str) -> String {
    let mut end = ua.len().min(512);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua[..end].to_owned()
}

/// An event as the admin API, `GET /users/me/events` and `latch audit --json` show it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventView {
    #[schema(value_type = Uuid)]
    pub id: crate::domain::EventId,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// What happened (the document lists the types; docs/admin.md says when each is
    /// written).
    #[serde(rename = "type")]
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub actor: ActorView,
    /// The account the event is about.
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Option<crate::domain::UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_id: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    pub session_id: Option<crate::domain::SessionId>,
    /// What else is known, by type (never a secret).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Who did it: `user`, `admin`, `client` or `system`, with a user or client id.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ActorView {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        Self {
            id: e.id,
            time: e.at,
            kind: e.kind,
            outcome: e.outcome,
            actor: ActorView { kind: e.actor_type, id: e.actor_id },
            user_id: e.user_id,
            ip: e.ip,
            user_agent: e.user_agent,
            client_id: e.client_id,
            session_id: e.session_id,
            details: serde_json::from_str(&e.details).unwrap_or_default(),
        }
    }
}
