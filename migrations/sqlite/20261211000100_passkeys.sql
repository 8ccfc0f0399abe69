-- Passkeys (WebAuthn, SPEC §9): several per account, named. `passkey` is the
-- credential as webauthn-rs keeps it (public key, signature counter), JSON;
-- `backup_eligible` tells a synced passkey (amr `swk`) from one bound to a device
-- (`hwk`).
CREATE TABLE passkeys (
    id              BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   BLOB NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    passkey         TEXT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- A WebAuthn ceremony under way (a registration, a passwordless sign-in): the digest
-- of its id, handed to the browser, and the state webauthn-rs checks the answer
-- against. Used once; five minutes.
CREATE TABLE webauthn_ceremonies (
    id_hash     BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);

-- The passkey assertion a second step waits for, when the account has passkeys.
ALTER TABLE mfa_challenges ADD COLUMN webauthn TEXT;
