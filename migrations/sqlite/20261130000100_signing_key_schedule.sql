-- Staged rotation: a key is published as soon as it is added but signs only from
-- signs_from (`latch keys rotate` sets it LATCH_KEY_ROTATION_DELAY ahead). Keys that
-- exist already signed from their creation.
ALTER TABLE signing_keys ADD COLUMN signs_from TEXT;
UPDATE signing_keys SET signs_from = created_at;
-- With LATCH_KEY_ENCRYPTION_KEY_FILE, private_der is sealed and encrypted_with holds
-- the id of the key-encryption key; NULL means private_der is plaintext.
ALTER TABLE signing_keys ADD COLUMN encrypted_with TEXT;
