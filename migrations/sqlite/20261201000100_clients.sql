-- Registered OAuth clients (`latch client …`). Secrets are 256-bit random strings, so
-- their SHA-256 digest is enough to recognise them. Lists are JSON arrays of strings;
-- scopes are space-separated, as on the wire.
CREATE TABLE clients (
    client_id                   TEXT PRIMARY KEY NOT NULL,
    name                        TEXT NOT NULL,
    confidential                BOOLEAN NOT NULL,
    first_party                 BOOLEAN NOT NULL,
    secret_hash                 BLOB,
    origins                     TEXT NOT NULL,
    redirect_uris               TEXT NOT NULL,
    post_logout_redirect_uris   TEXT NOT NULL,
    scopes                      TEXT NOT NULL,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);

-- The scopes granted to a session; its refreshed tokens carry them.
ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT 'openid profile email';
