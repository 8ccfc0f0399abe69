-- Every abuse-limit row says when it stops mattering, so that old counters (and the
-- remembered clients of the lockout rule) can be deleted. Rows from before this
-- migration count as expired.
ALTER TABLE rate_limits ADD COLUMN expires_at TEXT NOT NULL DEFAULT '1970-01-01 00:00:00+00:00';
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
