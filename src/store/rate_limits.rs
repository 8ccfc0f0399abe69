//! Fixed-window counters for abuse limits, and remembered facts with an expiry (a
//! client that logged in to an account). A window opens at the first event for a key
//! and ends at `expires_at`; the rows live in the database so that every instance sees
//! the same numbers, and expired rows are deleted by the janitor.

use crate::domain::Timestamp;

use super::StoreError;

/// The state of one counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Counter {
    pub key: String,
    pub count: i64,
    /// How many of `count` are password checks still running.
    pub pending: i64,
    pub window_start: Timestamp,
    pub expires_at: Timestamp,
}

/// What settling a password check does to one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Take back the event counted in advance (a success is no failure; a refused or
    /// abandoned check never ran).
    Undo,
    /// The event counted in advance stands: the check ran and failed.
    Fail,
    /// Forget the settled failures, keeping the checks still in flight (a success
    /// clears the identifier-and-address counters).
    Forgive,
    /// Remember the key until the given time (a client proved for an account).
    Remember(Timestamp),
}

#[async_trait::async_trait]
pub trait RateLimitStore {
    /// Counts one event for each `(key, window_secs)` in one statement, opening a new
    /// window where the current one has passed; returns the counters after the event.
    /// With `pending`, the events are checks still to be settled.
    async fn hit_all(&self, keys: &[(String, i64)], pending: bool, now: Timestamp) -> Result<Vec<Counter>, StoreError>;
    /// Which of `keys` are remembered (a row whose window has not ended), and until when.
    async fn remembered(&self, keys: &[String], now: Timestamp) -> Result<Vec<(String, Timestamp)>, StoreError>;
    /// Applies the operations in one transaction, in the order of their keys (as
    /// [`RateLimitStore::hit_all`] locks them), so that concurrent checks cannot deadlock.
    async fn settle(&self, ops: &[(String, Settle)], now: Timestamp) -> Result<(), StoreError>;
    /// Deletes every row whose window has ended; returns how many.
    async fn delete_expired_limits(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// `INSERT … VALUES ($3, $1, 1, $2, $4), ($5, $1, 1, $2, $6), …`: one row per key,
/// sharing `now` ($1) and the pending increment ($2).
pub(crate) fn hit_statement(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO rate_limits (key, window_start, count, pending, expires_at) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, $1, 1, $2, ${})", 2 * i + 3, 2 * i + 4));
    }
    sql.push_str(
        " ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN rate_limits.expires_at <= excluded.window_start THEN 1 ELSE rate_limits.count + 1 END,
            pending = CASE WHEN rate_limits.expires_at <= excluded.window_start
                THEN excluded.pending ELSE rate_limits.pending + excluded.pending END,
            window_start = CASE WHEN rate_limits.expires_at <= excluded.window_start
                THEN excluded.window_start ELSE rate_limits.window_start END,
            expires_at = CASE WHEN rate_limits.expires_at <= excluded.window_start
                THEN excluded.expires_at ELSE rate_limits.expires_at END
         RETURNING key, count, pending, window_start, expires_at",
    );
    sql
}

/// `$2, $3, …` for `n` bound values after `$1`.
pub(crate) fn placeholders(n: usize) -> String {
    (0..n).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ")
}

macro_rules! impl_rate_limit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RateLimitStore for $store {
            async fn hit_all(
                &self,
                keys: &[(String, i64)],
                pending: bool,
                now: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::store::Counter>, $crate::store::StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                // Rows are locked in key order, as `settle` locks them.
                let mut keys: Vec<&(String, i64)> = keys.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                let sql = $crate::store::rate_limits::hit_statement(keys.len());
                let mut query = sqlx::query_as(&sql).bind(now).bind(i64::from(pending));
                for (key, window_secs) in keys {
                    query = query.bind(key.as_str()).bind(now + time::Duration::seconds(*window_secs));
                }
                Ok(query.fetch_all(self.write()).await?)
            }

            async fn remembered(
                &self,
                keys: &[String],
                now: $crate::domain::Timestamp,
            ) -> Result<Vec<(String, $crate::domain::Timestamp)>, $crate::store::StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT key, expires_at FROM rate_limits WHERE expires_at > $1 AND key IN ({})",
                    $crate::store::rate_limits::placeholders(keys.len())
                );
                let mut query = sqlx::query_as(&sql).bind(now);
                for key in keys {
                    query = query.bind(key.as_str());
                }
                Ok(query.fetch_all(self.read()).await?)
            }

            async fn settle(
                &self,
                ops: &[(String, $crate::store::Settle)],
                now: $crate::domain::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::Settle;
                if ops.is_empty() {
                    return Ok(());
                }
                // One row per statement, in key order: rows are locked in the order
                // `hit_all` locks them, so that concurrent checks cannot deadlock (a
                // statement over several rows would lock them in the table's order).
                let mut ops: Vec<&(String, Settle)> = ops.iter().collect();
                ops.sort_by(|a, b| a.0.cmp(&b.0));
                let mut tx = self.write().begin().await?;
                for (key, op) in ops {
                    let sql = match op {
                        Settle::Undo => {
                            "UPDATE rate_limits SET count = CASE WHEN count > 0 THEN count - 1 ELSE 0 END,
                                pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END
                             WHERE key = $1 AND expires_at > $2"
                        }
                        Settle::Fail => {
                            "UPDATE rate_limits SET pending = pending - 1 WHERE key = $1 AND pending > 0 AND expires_at > $2"
                        }
                        Settle::Forgive => {
                            "UPDATE rate_limits SET count = pending WHERE key = $1 AND count <> pending AND expires_at > $2"
                        }
                        Settle::Remember(until) => {
                            sqlx::query(
                                "INSERT INTO rate_limits (key, window_start, count, pending, expires_at)
                                 VALUES ($1, $2, 1, 0, $3)
                                 ON CONFLICT (key) DO UPDATE SET window_start = $2, count = 1, pending = 0, expires_at = $3",
                            )
                            .bind(key)
                            .bind(now)
                            .bind(*until)
                            .execute(&mut *tx)
                            .await?;
                            continue;
                        }
                    };
                    sqlx::query(sql).bind(key).bind(now).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_expired_limits(&self, now: $crate::domain::Timestamp) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM rate_limits WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_rate_limit_store;
