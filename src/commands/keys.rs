//! `latch keys rotate`: a new signing key with the configured algorithm, staged so
//! that no verifier meets a `kid` it could not have fetched yet. The key is published
//! at once and signs from `LATCH_KEY_ROTATION_DELAY` later; this command computes that
//! time and stores it with the key, so every server switches at the same moment
//! whatever delay it was configured with. Running servers see the key within a second
//! (`NOTIFY` on PostgreSQL; on SQLite they reread the keys twice a second) and switch
//! at its time on their own. `--now` is for a compromised key: the new key signs at
//! once and every other key is deleted.

use crate::auth::tokens;
use crate::cli::KeysCommand;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Actor, AuditEvent, EventType};

/// Runs `latch keys …`.
pub(super) async fn run(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { now } => rotate(config, now).await,
    }
}

async fn rotate(config: Config, at_once: bool) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    let kek = config.key_encryption_key.as_ref();
    let now = Clock::system().now();
    let published = store.signing_keys(tokens::published_since(now, config.access_token_ttl)).await?;
    if !at_once {
        // The new key joins the others: refuse to mix plaintext and encrypted keys, or
        // keys under different key-encryption keys. `--now` deletes the others, which
        // makes it the way to change or drop the key-encryption key.
        if let Some(kek) = kek {
            tokens::encrypt_plaintext_keys(&*store, kek).await?;
        }
        for k in &published {
            tokens::private_key(k, kek)?;
        }
    }
    let first = !published.iter().any(|k| k.purpose == tokens::ACCESS_KEYS);
    let signs_from = if at_once || first { now } else { now + tokens::whole_seconds(config.key_rotation_delay) };
    let key = tokens::generate_key(config.signing_algorithm, now, signs_from, kek, tokens::ACCESS_KEYS)?;
    let event = AuditEvent::new(EventType::KeyRotation, Actor::System, now)
        .detail("kid", key.kid.as_str())
        .detail("algorithm", key.algorithm.as_str())
        .detail("reason", if at_once { "rotate_now" } else { "rotate" })
        .detail("via", "cli");
    store.add_signing_key(&key, at_once, &event).await?;
    // ID-token keys, once the OpenID flows made one, rotate with the access-token keys.
    if published.iter().any(|k| k.purpose == tokens::ID_KEYS) {
        let id_key =
            tokens::generate_key(crate::config::SigningAlgorithm::Rs256, now, signs_from, kek, tokens::ID_KEYS)?;
        let event = AuditEvent::new(EventType::KeyRotation, Actor::System, now)
            .detail("kid", id_key.kid.as_str())
            .detail("algorithm", id_key.algorithm.as_str())
            .detail("purpose", tokens::ID_KEYS)
            .detail("reason", if at_once { "rotate_now" } else { "rotate" })
            .detail("via", "cli");
        store.add_signing_key(&id_key, at_once, &event).await?;
        println!("new ID-token key {} ({})", id_key.kid, id_key.algorithm);
    }
    let encrypted = if kek.is_some() { ", encrypted" } else { "" };
    println!("new signing key {} ({}{encrypted})", key.kid, key.algorithm);
    if at_once {
        println!(
            "running `latch serve` processes sign with it within a second; every other key is deleted: \
             it leaves JWKS and Latch refuses the access tokens it signed (clients get new ones with \
             their refresh tokens)"
        );
    } else if first {
        println!("there was no key before: it signs at once");
    } else {
        let when = signs_from.to_string();
        println!(
            "running `latch serve` processes publish it in JWKS within a second and sign with it from {when} \
             (LATCH_KEY_ROTATION_DELAY {}); the current key then retires and stays in JWKS until the \
             tokens it signed have expired",
            humantime::format_duration(tokens::whole_seconds(config.key_rotation_delay))
        );
    }
    Ok(())
}
