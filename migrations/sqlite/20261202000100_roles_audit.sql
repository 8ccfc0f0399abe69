-- Roles replace the admin flag: a space-separated, sorted set of role names (`admin`
-- built in). The audit log keeps security events; it has no foreign keys, so that the
-- events of a deleted account stay until their retention ends.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
UPDATE users SET roles = 'admin' WHERE is_admin;
ALTER TABLE users DROP COLUMN is_admin;
-- The enabled admins, which every admin change counts (and locks) so that the last one
-- stays: an index of them alone, whatever the number of users.
CREATE INDEX users_admins ON users (id) WHERE NOT disabled AND instr(' ' || roles || ' ', ' admin ') > 0;

CREATE TABLE audit_events (
    id              BLOB PRIMARY KEY NOT NULL,
    at              TEXT NOT NULL,
    type            TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT,
    user_id         BLOB,
    ip              TEXT,
    user_agent      TEXT,
    client_id       TEXT,
    session_id      BLOB,
    details         TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user ON audit_events (user_id, at, id);
CREATE INDEX audit_events_type ON audit_events (type, at, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at, id);

-- Random keys of this installation, shared by every instance (the key that seals the
-- admin API's page cursors). Made by the first instance that needs one.
CREATE TABLE instance_secrets (
    name            TEXT PRIMARY KEY NOT NULL,
    value           BLOB NOT NULL
);
