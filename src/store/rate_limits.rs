//! Fixed-window counters for abuse limits, and remembered facts with an expiry (a
//! client that logged in to an account). A window opens at the first event for a key
//! and ends at `expires_at`; the rows live in the database so that every instance sees
//! the same numbers, and expired rows are deleted by the janitor.

use time::OffsetDateTime;

use super::StoreError;

/// The state of one counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Counter {
    pub key: String,
    pub count: i64,
    pub window_start: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What a successful attempt does to the counters it was counted against.
#[derive(Debug, Default)]
pub struct Settlement<'a> {
    /// Counters reset to zero (the account-and-address counter after a login).
    pub clear: &'a [String],
    /// Counters that take back the event counted in advance (a success is no failure).
    pub undo: &'a [String],
    /// Facts remembered until the given time (a client proved for an account).
    pub remember: &'a [(String, OffsetDateTime)],
}

#[async_trait::async_trait]
pub trait RateLimitStore {
    /// Counts one event for each `(key, window_secs)` in one statement, opening a new
    /// window where the current one has passed; returns the counters after the event.
    async fn hit_all(&self, keys: &[(String, i64)], now: OffsetDateTime) -> Result<Vec<Counter>, StoreError>;
    /// Which of `keys` are remembered (a row whose window has not ended).
    async fn remembered(&self, keys: &[String], now: OffsetDateTime) -> Result<Vec<String>, StoreError>;
    /// Applies a [`Settlement`] in one transaction.
    async fn settle(&self, settlement: &Settlement<'_>, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes every row whose window has ended; returns how many.
    async fn delete_expired_limits(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// `INSERT … VALUES ($1, $2, 1, $3), ($4, $2, 1, $5), …`: one row per key, sharing `now`.
pub(crate) fn hit_statement(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, $1, 1, ${})", 2 * i + 2, 2 * i + 3));
    }
    sql.push_str(
        " ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN rate_limits.expires_at <= excluded.window_start THEN 1 ELSE rate_limits.count + 1 END,
            window_start = CASE WHEN rate_limits.expires_at <= excluded.window_start
                THEN excluded.window_start ELSE rate_limits.window_start END,
            expires_at = CASE WHEN rate_limits.expires_at <= excluded.window_start
                THEN excluded.expires_at ELSE rate_limits.expires_at END
         RETURNING key, count, window_start, expires_at",
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
                now: time::OffsetDateTime,
            ) -> Result<Vec<$crate::store::Counter>, $crate::store::StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = $crate::store::rate_limits::hit_statement(keys.len());
                let mut query = sqlx::query_as(&sql).bind(now);
                for (key, window_secs) in keys {
                    query = query.bind(key.as_str()).bind(now + time::Duration::seconds(*window_secs));
                }
                Ok(query.fetch_all(self.write()).await?)
            }

            async fn remembered(
                &self,
                keys: &[String],
                now: time::OffsetDateTime,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT key FROM rate_limits WHERE expires_at > $1 AND key IN ({})",
                    $crate::store::rate_limits::placeholders(keys.len())
                );
                let mut query = sqlx::query_scalar(&sql).bind(now);
                for key in keys {
                    query = query.bind(key.as_str());
                }
                Ok(query.fetch_all(self.read()).await?)
            }

            async fn settle(
                &self,
                s: &$crate::store::Settlement<'_>,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                if s.clear.is_empty() && s.undo.is_empty() && s.remember.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write().begin().await?;
                for key in s.clear {
                    sqlx::query("DELETE FROM rate_limits WHERE key = $1").bind(key).execute(&mut *tx).await?;
                }
                for key in s.undo {
                    sqlx::query(
                        "UPDATE rate_limits SET count = count - 1 WHERE key = $1 AND count > 0 AND expires_at > $2",
                    )
                    .bind(key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                for (key, until) in s.remember {
                    sqlx::query(
                        "INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3)
                         ON CONFLICT (key) DO UPDATE SET window_start = $2, count = 1, expires_at = $3",
                    )
                    .bind(key)
                    .bind(now)
                    .bind(*until)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_expired_limits(&self, now: time::OffsetDateTime) -> Result<u64, $crate::store::StoreError> {
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
