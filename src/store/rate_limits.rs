//! Fixed-window counters for abuse limits. A window opens at the first event for a key
//! and lasts the limit's period; the counts live in the database so that every
//! instance sees the same numbers.

use time::OffsetDateTime;

use super::StoreError;

/// The state of one counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Counter {
    pub key: String,
    pub count: i64,
    pub window_start: OffsetDateTime,
}

#[async_trait::async_trait]
pub trait RateLimitStore {
    /// Counts one event for `key` in a window of `window_secs`, opening a new window
    /// when the current one has passed; returns the counter after the event.
    async fn hit(&self, key: &str, window_secs: i64, now: OffsetDateTime) -> Result<Counter, StoreError>;
    /// The counters for `keys` whose window opened after `since`.
    async fn counters(&self, keys: &[String], since: OffsetDateTime) -> Result<Vec<Counter>, StoreError>;
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

macro_rules! impl_rate_limit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RateLimitStore for $store {
            async fn hit(
                &self,
                key: &str,
                window_secs: i64,
                now: time::OffsetDateTime,
            ) -> Result<$crate::store::Counter, $crate::store::StoreError> {
                let cutoff = now - time::Duration::seconds(window_secs);
                Ok(sqlx::query_as(
                    "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
                     ON CONFLICT (key) DO UPDATE SET
                        count = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.count + 1 END,
                        window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END
                     RETURNING key, count, window_start",
                )
                .bind(key)
                .bind(now)
                .bind(cutoff)
                .fetch_one(self.write())
                .await?)
            }

            async fn counters(
                &self,
                keys: &[String],
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::store::Counter>, $crate::store::StoreError> {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    let row: Option<$crate::store::Counter> = sqlx::query_as(
                        "SELECT key, count, window_start FROM rate_limits WHERE key = $1 AND window_start > $2",
                    )
                    .bind(key)
                    .bind(since)
                    .fetch_optional(self.read())
                    .await?;
                    out.extend(row);
                }
                Ok(out)
            }

            async fn clear(&self, key: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM rate_limits WHERE key = $1").bind(key).execute(self.write()).await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_rate_limit_store;
