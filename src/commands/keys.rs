//! `latch keys rotate`: a new signing key with the configured algorithm. The previous
//! keys are retired (they stop signing) but stay published in JWKS until the tokens
//! they signed have expired. Running servers sign with the new key within a second
//! (told through `NOTIFY` on PostgreSQL; on SQLite they reread the keys twice a second).

use crate::auth::tokens;
use crate::cli::KeysCommand;
use crate::config::Config;

/// Runs `latch keys …`.
pub(super) async fn run(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate => rotate(config).await,
    }
}

async fn rotate(config: Config) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    let key = tokens::generate_key(config.signing_algorithm)?;
    store.add_signing_key(&key).await?;
    println!(
        "new signing key {} ({}); older keys are retired and stay in JWKS until their tokens expire",
        key.kid, key.algorithm
    );
    println!("running `latch serve` processes sign with it within a second");
    Ok(())
}
