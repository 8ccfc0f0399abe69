//! Authentication, free of HTTP: sessions and the password checks that start them
//! ([`sessions::Sessions`]), accounts and what changes them ([`accounts::Accounts`]),
//! password hashing, access tokens and their keys, opaque secrets, abuse limits, and
//! the emails that prove an address. Handlers call these services with domain values
//! and map their errors to responses.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod cache;
pub mod clients;
pub mod emails;
pub mod kek;
pub mod limits;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod password;
pub mod registry;
pub mod secret;
pub mod sessions;
pub mod tokens;

use std::sync::Arc;

use crate::store::{Change, Store};

/// Runs `reload` whenever the store announces a change that `wants` picks (or that
/// announcements were missed), and at the store's poll interval for what
/// announcements cannot reach (another process on a SQLite file). Returns when the
/// store's announcements end.
pub(crate) async fn follow<F, Fut>(store: Arc<dyn Store>, wants: fn(Change) -> bool, mut reload: F)
where
    F: FnMut(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = store.subscribe();
    let mut tick = tokio::time::interval(store.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => wants(change),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => true,
        };
        if due {
            reload(store.clone()).await;
        }
    }
}
