-- Every abuse-limit row says when it stops mattering, so that old counters (and the
-- remembered clients of the lockout rule) can be deleted. Rows from before this
-- migration count as expired.
ALTER TABLE rate_limits ADD COLUMN expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch';
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
