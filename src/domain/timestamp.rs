//! Instants as Latch stores them: whole seconds in UTC. Truncation happens when a
//! `Timestamp` is made, so that a value read back from either database equals the one
//! written, and comparisons never depend on sub-second noise.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// A UTC instant in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// `t` truncated to the second, in UTC (kept in its own offset in the one case
    /// where UTC is out of range: the last hours of year 9999 west of Greenwich).
    pub fn new(t: OffsetDateTime) -> Self {
        let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
        Self(t.replace_nanosecond(0).unwrap_or(t))
    }

    /// `t`, when it lies in the years 1 to 9999 in UTC: what both databases store.
    /// Times from outside (a query parameter, a cursor) go through here.
    pub fn checked(t: OffsetDateTime) -> Option<Self> {
        let utc = t.checked_to_offset(time::UtcOffset::UTC)?;
        (1..=9999).contains(&utc.year()).then(|| Self::new(utc))
    }

    /// An RFC 3339 time (`2026-11-30T08:00:00Z`), within [`Self::checked`]'s range.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().and_then(Self::checked)
    }

    /// Seconds since the Unix epoch, within [`Self::checked`]'s range.
    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().and_then(Self::checked)
    }

    pub fn unix(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self::new(t)
    }
}

impl Add<std::time::Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: std::time::Duration) -> Timestamp {
        Self::new(self.0.saturating_add(saturating(d)))
    }
}

impl Sub<std::time::Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: std::time::Duration) -> Timestamp {
        Self::new(self.0.saturating_sub(saturating(d)))
    }
}

impl Add<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: time::Duration) -> Timestamp {
        Self::new(self.0.saturating_add(d))
    }
}

impl Sub<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: time::Duration) -> Timestamp {
        Self::new(self.0.saturating_sub(d))
    }
}

impl Sub for Timestamp {
    type Output = time::Duration;

    fn sub(self, other: Timestamp) -> time::Duration {
        self.0 - other.0
    }
}

fn saturating(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&time::format_description::well_known::Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

/// RFC 3339, as every time in the API.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(&self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_in_utc() {
        let t = time::macros::datetime!(2026-11-29 10:00:00.75 +02:00);
        let ts = Timestamp::new(t);
        assert_eq!(ts.get(), time::macros::datetime!(2026-11-29 08:00:00 UTC));
        assert_eq!(
            ts + std::time::Duration::from_millis(1500),
            Timestamp::new(time::macros::datetime!(2026-11-29 08:00:01 UTC))
        );
        assert_eq!(ts.to_string(), "2026-11-29T08:00:00Z");
    }

    #[test]
    fn times_from_outside_stay_within_years_1_to_9999() {
        let utc = Timestamp::new(time::macros::datetime!(2026-11-29 08:00:00 UTC));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-29T10:00:00+02:00"), Some(utc));
        assert_eq!(Timestamp::from_unix(utc.unix()), Some(utc));
        for text in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00", "0000-06-01T00:00:00Z", "yesterday"] {
            assert!(Timestamp::parse_rfc3339(text).is_none(), "{text}");
        }
        assert!(Timestamp::from_unix(-62_135_596_801).is_none(), "year 0");
        assert!(Timestamp::from_unix(i64::MAX).is_none());
        // Never a panic, whatever the offset.
        let late = time::macros::datetime!(9999-12-31 23:59:59 -01:00);
        assert_eq!(Timestamp::new(late).get(), late);
    }
}
