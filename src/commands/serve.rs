//! `latch serve` and `latch migrate`.

use crate::app::{self, App};
use crate::config::Config;

/// Runs the server until SIGTERM or Ctrl-C.
pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    // Tests and scripts read this first line to learn the address (port 0 allowed).
    println!("listening on http://{}", app.local_addr());
    if let Some(metrics) = app.metrics_addr() {
        println!("metrics on http://{metrics}/metrics");
    }
    tracing::info!(
        address = %app.local_addr(),
        issuer = app.public_url(),
        max_connections = app.max_connections(),
        "listening"
    );
    app.run(app::shutdown_signal()).await
}

/// Applies pending migrations and exits.
pub(super) async fn migrate(config: Config) -> anyhow::Result<()> {
    super::open_store(&config).await?;
    println!("migrations applied");
    Ok(())
}
