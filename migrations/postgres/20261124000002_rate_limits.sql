-- Abuse-limit counters, shared by every instance on the database. One row per key
-- ("login:ip:203.0.113.9", "reset:email:…"): how many events since window_start.
CREATE TABLE rate_limits (
    key             TEXT PRIMARY KEY,
    window_start    TIMESTAMPTZ NOT NULL,
    count           BIGINT NOT NULL
);
