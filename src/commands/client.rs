//! `latch client …`: the registry of OAuth clients. A confidential client's secret is
//! printed once, when it is made, and stored only as its digest. Running servers see a
//! change within a second (`NOTIFY` on PostgreSQL; on SQLite they reread the registry
//! twice a second).

use anyhow::Context as _;
use serde_json::json;

use crate::auth::registry::{self, ClientSpec, ClientView};
use crate::cli::{ClientCommand, ClientSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::FieldError;
use crate::store::{Actor, AuditEvent, ClientRecord, EventType, Store};

/// Runs `latch client …`.
pub(super) async fn run(command: ClientCommand, config: Config) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    match command {
        ClientCommand::Create { name, confidential, first_party, settings, json } => {
            create(&*store, name, confidential, first_party, settings, json).await
        }
        ClientCommand::List { json } => list(&*store, json).await,
        ClientCommand::Show { client_id, json } => {
            let client = find(&*store, &client_id).await?;
            print_client(&client, json);
            Ok(())
        }
        ClientCommand::Update { client_id, name, first_party, settings, no_origins } => {
            update(&*store, &client_id, name, first_party, settings, no_origins).await
        }
        ClientCommand::Delete { client_id } => {
            let deleted = store.delete_client(&client_id, &event(EventType::ClientDeleted, &client_id)).await?;
            anyhow::ensure!(deleted, "no client `{client_id}`");
            eprintln!("deleted client {client_id}; the sessions it started have ended");
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, json } => rotate_secret(&*store, &client_id, json).await,
    }
}

/// `settings` as a client spec; an empty list means "not given".
fn spec(name: Option<String>, first_party: Option<bool>, settings: ClientSettings) -> ClientSpec {
    let given = |list: Vec<String>| (!list.is_empty()).then_some(list);
    ClientSpec {
        name,
        first_party,
        origins: given(settings.origins),
        redirect_uris: given(settings.redirect_uris),
        post_logout_redirect_uris: given(settings.post_logout_redirect_uris),
        scopes: given(settings.scopes),
    }
}

/// The registry's refusals, named by their flags.
fn refused(errors: Vec<FieldError>) -> anyhow::Error {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let flag = match e.field.as_str() {
                "origins" => "--origin",
                "redirect_uris" => "--redirect-uri",
                "post_logout_redirect_uris" => "--post-logout-redirect-uri",
                "scopes" => "--scope",
                _ => "--name",
            };
            format!("{flag}: {}", e.message)
        })
        .collect();
    anyhow::anyhow!(lines.join("\n"))
}

/// The event of an operator's change to `client_id`.
fn event(kind: EventType, client_id: &str) -> AuditEvent {
    AuditEvent::new(kind, Actor::System, Clock::system().now()).detail("client", client_id).detail("via", "cli")
}

async fn create(
    store: &dyn Store,
    name: String,
    confidential: bool,
    first_party: bool,
    settings: ClientSettings,
    json: bool,
) -> anyhow::Result<()> {
    let spec = spec(Some(name), Some(first_party), settings);
    let (client, secret) = registry::new_client(&spec, confidential, Clock::system().now()).map_err(refused)?;
    store.create_client(&client, &event(EventType::ClientCreated, &client.client_id)).await?;
    print_secret(&client.client_id, secret.as_deref(), json);
    Ok(())
}

fn print_secret(client_id: &str, secret: Option<&str>, json: bool) {
    if json {
        let mut value = json!({ "client_id": client_id });
        if let Some(secret) = secret {
            value["client_secret"] = json!(secret);
        }
        println!("{value}");
        return;
    }
    println!("client_id:     {client_id}");
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        eprintln!("the secret is shown only now: Latch keeps only its digest");
    }
}

async fn find(store: &dyn Store, client_id: &str) -> anyhow::Result<ClientRecord> {
    let clients = store.clients().await?;
    clients.into_iter().find(|c| c.client_id == client_id).with_context(|| format!("no client `{client_id}`"))
}

fn view(c: &ClientRecord) -> serde_json::Value {
    serde_json::to_value(ClientView::from(c)).unwrap_or_default()
}

fn print_client(c: &ClientRecord, json: bool) {
    let v = view(c);
    if json {
        println!("{v}");
        return;
    }
    let kind = if c.confidential { "confidential" } else { "public" };
    let trust = if c.first_party { ", first-party" } else { "" };
    println!("client_id:      {}", c.client_id);
    println!("name:           {}", c.name);
    println!("kind:           {kind}{trust}");
    println!("scopes:         {}", c.scopes);
    for (label, key) in
        [("origins", "origins"), ("redirect URIs", "redirect_uris"), ("logout URIs", "post_logout_redirect_uris")]
    {
        let items: Vec<&str> =
            v[key].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
        println!("{:<15} {}", format!("{label}:"), if items.is_empty() { "-".to_owned() } else { items.join(" ") });
    }
    println!("created:        {}", c.created_at);
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let clients = store.clients().await?;
    for c in &clients {
        if json {
            println!("{}", view(c));
        } else {
            let kind = if c.confidential { "confidential" } else { "public" };
            println!("{}  {:<12}  {}", c.client_id, kind, c.name);
        }
    }
    eprintln!("{} client(s)", clients.len());
    Ok(())
}

async fn update(
    store: &dyn Store,
    client_id: &str,
    name: Option<String>,
    first_party: Option<bool>,
    settings: ClientSettings,
    no_origins: bool,
) -> anyhow::Result<()> {
    let record = find(store, client_id).await?;
    let mut spec = spec(name, first_party, settings);
    if no_origins {
        spec.origins = Some(Vec::new());
    }
    spec.check(record.confidential).map_err(refused)?;
    let event = event(EventType::ClientUpdated, client_id).detail("fields", spec.given());
    let now = Clock::system().now();
    let apply = |c: &mut ClientRecord| registry::apply(c, &spec, now);
    let client = store.update_client(client_id, &apply, &event).await?;
    let client = client.with_context(|| format!("no client `{client_id}`"))?;
    print_client(&client, false);
    Ok(())
}

async fn rotate_secret(store: &dyn Store, client_id: &str, json: bool) -> anyhow::Result<()> {
    let client = find(store, client_id).await?;
    let (secret, digest) =
        registry::new_secret(&client).with_context(|| format!("client `{client_id}` is public: it has no secret"))?;
    let event = event(EventType::ClientSecretRotated, client_id);
    let stored = store.set_client_secret(client_id, &digest, Clock::system().now(), &event).await?;
    anyhow::ensure!(stored, "no client `{client_id}`");
    print_secret(client_id, Some(&secret), json);
    Ok(())
}
