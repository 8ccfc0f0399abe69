//! The key-encryption key (`LATCH_KEY_ENCRYPTION_KEY_FILE`): secrets that Latch must
//! read back, such as private signing keys, are encrypted with it before they reach
//! the database, so that the database alone (a backup, a dump, a copied disk) does not
//! yield them.
//!
//! The file holds 32 random bytes, in base64 (`openssl rand -base64 32`) or as 64 hex
//! digits; surrounding whitespace is ignored. The cipher is XChaCha20-Poly1305: its
//! 192-bit nonces can be drawn at random for every message without a counter to keep,
//! and the associated data binds each ciphertext to the row it belongs to, so that
//! ciphertexts cannot be swapped between rows. A sealed value is `nonce || ciphertext`.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// The key from `LATCH_KEY_ENCRYPTION_KEY_FILE`. `Debug` shows only its id.
#[derive(Clone)]
pub struct KeyEncryptionKey(Arc<Inner>);

struct Inner {
    cipher: XChaCha20Poly1305,
    id: String,
    /// What [`KeyEncryptionKey::derive`] keys its HMAC with (not the key itself).
    derivation: Zeroizing<[u8; 32]>,
}

/// A sealed value could not be opened: another key, other associated data, or damage.
#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt: wrong key-encryption key or damaged data")]
pub struct OpenError;

impl KeyEncryptionKey {
    /// Reads the key from `path`. Errors never quote the file's contents.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file format: 32 bytes in base64 (padded or not) or in hex.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(decode_hex(text))
        } else {
            let b64 = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            Zeroizing::new(b64.decode(text).map_err(|_| KEY_FORMAT.to_owned())?)
        };
        let key: &[u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| KEY_FORMAT.to_owned())?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: &[u8; KEY_BYTES]) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"latch key-encryption key id\0");
        digest.update(key);
        let id = digest.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut derivation = Sha256::new();
        derivation.update(b"latch key-encryption key derivation\0");
        derivation.update(key);
        let derivation = Zeroizing::new(derivation.finalize().into());
        Self(Arc::new(Inner { cipher, id, derivation }))
    }

    /// A short public fingerprint of the key, stored next to what it encrypted so that
    /// a wrong key is named as such. It reveals nothing about the key.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// A key for `purpose` from `input` (a value kept in the database) and this key:
    /// HMAC-SHA256, so that whoever reads the database without this key cannot compute
    /// it.
    pub fn derive(&self, purpose: &str, input: &[u8]) -> Zeroizing<[u8; 32]> {
        use hmac::{Hmac, Mac as _};
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&*self.0.derivation)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(input);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Encrypts `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`KeyEncryptionKey::seal`] made with the same key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_BYTES).ok_or(OpenError)?;
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError)?;
        self.0
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey").field("id", &self.0.id).finish_non_exhaustive()
    }
}

const KEY_FORMAT: &str =
    "must hold 32 random bytes in base64 or as 64 hex digits (make one with `openssl rand -base64 32`)";

/// Decodes hex digits already checked to be hex and of even length.
fn decode_hex(text: &str) -> Vec<u8> {
    let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    text.as_bytes().chunks(2).map(|pair| digit(pair[0]) << 4 | digit(pair[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "q8f4kQ0Fh0k2x3ZpZ2hY7m9o4V3Yt1cQm0u8bD4bH3A=";

    #[test]
    fn seal_and_open_round_trip() {
        let kek = KeyEncryptionKey::parse(KEY_B64).unwrap();
        let sealed = kek.seal(b"private key bytes", b"row 1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"private"), "the plaintext is not in the sealed value");
        assert_eq!(kek.open(&sealed, b"row 1").unwrap().as_slice(), b"private key bytes");
        assert_ne!(kek.seal(b"private key bytes", b"row 1").unwrap(), sealed, "a fresh nonce every time");
    }

    #[test]
    fn a_wrong_key_other_row_or_damage_is_refused() {
        let kek = KeyEncryptionKey::parse(KEY_B64).unwrap();
        let other = KeyEncryptionKey::parse(&"ab".repeat(32)).unwrap();
        assert_ne!(kek.id(), other.id());
        let sealed = kek.seal(b"secret", b"row 1").unwrap();
        assert!(other.open(&sealed, b"row 1").is_err());
        assert!(kek.open(&sealed, b"row 2").is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(kek.open(&damaged, b"row 1").is_err());
        assert!(kek.open(&sealed[..10], b"row 1").is_err());
    }

    #[test]
    fn the_file_holds_32_bytes_in_base64_or_hex() {
        let b64 = KeyEncryptionKey::parse(&format!("  {KEY_B64}\n")).unwrap();
        let unpadded = KeyEncryptionKey::parse(KEY_B64.trim_end_matches('=')).unwrap();
        assert_eq!(b64.id(), unpadded.id());
        let bytes = base64::engine::general_purpose::STANDARD.decode(KEY_B64).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(KeyEncryptionKey::parse(&hex).unwrap().id(), b64.id(), "hex, any case");
        for bad in ["", "short", &"ab".repeat(31), &base64::engine::general_purpose::STANDARD.encode([1u8; 16])] {
            let err = KeyEncryptionKey::parse(bad).unwrap_err();
            assert!(err.contains("openssl rand -base64 32"), "{err}");
        }
        assert!(!format!("{b64:?}").contains(KEY_B64));
    }

    #[test]
    fn errors_about_the_file_do_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, "not-a-key-but-a-secret-anyway").unwrap();
        let err = KeyEncryptionKey::from_file(&path).unwrap_err();
        assert!(!err.contains("secret-anyway"), "{err}");
        assert!(KeyEncryptionKey::from_file(&dir.path().join("missing")).unwrap_err().contains("cannot read"));
    }
}
