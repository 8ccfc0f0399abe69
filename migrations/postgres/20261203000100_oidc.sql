-- OpenID Connect provider (SPEC §8).

-- Authorization codes are sealed values that carry what they were issued for; only
-- their use is stored (as a SHA-256 digest), with the session it started, in that
-- session's transaction, so that a code works once and a second use can end that
-- session. Swept after ten minutes, long after a code has expired.
CREATE TABLE used_authorization_codes (
    code_hash       BYTEA PRIMARY KEY NOT NULL,
    session_id      UUID NOT NULL,
    used_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX used_authorization_codes_used_at ON used_authorization_codes (used_at);

-- What a user allowed a client that is not first-party: the scopes, space-separated.
-- A request within them asks no consent again.
CREATE TABLE consents (
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    granted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Access-token keys sign with the configured algorithm; ID tokens with their own
-- RS256 keys ('id'), the OpenID baseline every relying party accepts.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';

-- A session started through the authorization code flow for a client that is not
-- first-party: its tokens carry what the person allowed that application, which is
-- not Latch's own account or admin API.
ALTER TABLE sessions ADD COLUMN delegated BOOLEAN NOT NULL DEFAULT FALSE;
