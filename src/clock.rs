//! The one source of "now". Everything that compares against the time (session
//! lifetimes and idle timeouts, token expiry, one-time links, limit windows, key
//! rotation) asks the server's [`Clock`], so that tests can move time forward instead
//! of waiting. Durations that only bound work (timeouts, the session cache's one
//! second of trust) are measured with `Instant`; the command-line tools use the
//! system clock.

use std::sync::Arc;

use crate::domain::Timestamp;

/// Tells the time. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self(Arc::new(time::OffsetDateTime::now_utc))
    }

    /// A clock that reads `now`: tests pass one whose time they move.
    pub fn from_fn(now: impl Fn() -> time::OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time in whole seconds.
    pub fn now(&self) -> Timestamp {
        Timestamp::new((self.0)())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}
