-- Every abuse-limit row says when it stops mattering, so that old counters (and the
-- remembered clients of the lockout rule) can be deleted; rows from before this
-- migration count as expired. `pending` is how many of `count` are password checks
-- still running (counted before they ran), so that a refusal can tell a limit reached
-- by failures from one reached by checks in flight.
ALTER TABLE rate_limits ADD COLUMN expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch';
ALTER TABLE rate_limits ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
