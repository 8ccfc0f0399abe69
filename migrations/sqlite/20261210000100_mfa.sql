-- Second factors (SPEC §9).

-- One authenticator app per account. `secret` is the raw TOTP key, sealed with the
-- key-encryption key named by `kek_id` when one is configured. An enrolment is
-- pending until a first code confirms it; `last_step` is the time step of the last
-- code accepted, so that a code (or an older one) works once.
CREATE TABLE totp_factors (
    user_id     BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret      BLOB NOT NULL,
    kek_id      TEXT,
    confirmed   BOOLEAN NOT NULL DEFAULT FALSE,
    last_step   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

-- Single-use recovery codes, as SHA-256 digests; a used code is deleted.
CREATE TABLE recovery_codes (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   BLOB NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in waiting for its second step: the digest of its `mfa_token`, the session it
-- will start (client and scope) and how the first step went (`amr`). It lives five
-- minutes and a few attempts.
CREATE TABLE mfa_challenges (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    amr         TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  TEXT NOT NULL
);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);

-- How the session's user signed in (RFC 8176 values, space-separated), which its
-- access tokens carry as `amr`.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
