//! `latch client …`: the registry of OAuth clients. A confidential client's secret is
//! printed once, when it is made, and stored only as its digest. Running servers see a
//! change within a second (`NOTIFY` on PostgreSQL; on SQLite they reread the registry
//! twice a second).

use anyhow::Context as _;
use serde_json::json;

use crate::auth::clients::{STANDARD_SCOPES, valid_scope_token};
use crate::auth::secret;
use crate::cli::{ClientCommand, ClientSettings};
use crate::clock::Clock;
use crate::config::{Config, parse_origin};
use crate::store::{ClientRecord, Store, StoreError};

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
            anyhow::ensure!(store.delete_client(&client_id).await?, "no client `{client_id}`");
            eprintln!("deleted client {client_id}; the sessions it started have ended");
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, json } => rotate_secret(&*store, &client_id, json).await,
    }
}

/// The lists of `settings`, checked; `None` for a list not given.
struct Lists {
    origins: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
}

fn check(settings: ClientSettings) -> anyhow::Result<Lists> {
    let given = |list: Vec<String>| (!list.is_empty()).then_some(list);
    let origins = settings
        .origins
        .iter()
        .map(|o| parse_origin(o).map_err(|e| anyhow::anyhow!("--origin: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for uri in settings.redirect_uris.iter().chain(&settings.post_logout_redirect_uris) {
        check_redirect_uri(uri)?;
    }
    for scope in &settings.scopes {
        anyhow::ensure!(
            valid_scope_token(scope),
            "--scope: `{scope}` is not one scope (printable ASCII without spaces, quotes or backslashes)"
        );
    }
    Ok(Lists {
        origins: given(origins),
        redirect_uris: given(settings.redirect_uris),
        post_logout_redirect_uris: given(settings.post_logout_redirect_uris),
        scopes: given(settings.scopes),
    })
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2); plain http only for the
/// loopback interface (RFC 8252 §7.3), never a scheme that runs script.
fn check_redirect_uri(uri: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(uri).with_context(|| format!("`{uri}` is not an absolute URI"))?;
    anyhow::ensure!(url.fragment().is_none(), "`{uri}`: a redirect URI cannot have a fragment");
    let refused = ["javascript", "data", "vbscript", "file", "blob", "filesystem", "about", "ws", "wss"];
    anyhow::ensure!(!refused.contains(&url.scheme()), "`{uri}`: scheme {} refused", url.scheme());
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "`{uri}`: a redirect URI cannot hold credentials"
    );
    anyhow::ensure!(!url.host_str().is_some_and(|h| h.contains('*')), "`{uri}`: no wildcards; list each URI");
    if url.scheme() == "http" {
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        anyhow::ensure!(loopback, "`{uri}`: plain http is allowed only for localhost; use https");
    }
    Ok(())
}

/// 1 to 200 characters, none of them a control character (names are printed to
/// terminals and shown on pages).
fn check_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.trim().is_empty() && name.chars().count() <= 200 && !name.chars().any(char::is_control),
        "--name must be 1 to 200 characters without control characters"
    );
    Ok(())
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

async fn create(
    store: &dyn Store,
    name: String,
    confidential: bool,
    first_party: bool,
    settings: ClientSettings,
    json: bool,
) -> anyhow::Result<()> {
    check_name(&name)?;
    let lists = check(settings)?;
    let secret = confidential.then(secret::random_token);
    let now = Clock::system().now();
    let scopes = lists.scopes.unwrap_or_else(|| STANDARD_SCOPES.iter().map(|s| s.to_string()).collect());
    let client = ClientRecord {
        client_id: uuid::Uuid::new_v4().to_string(),
        name,
        confidential,
        first_party,
        secret_hash: secret.as_deref().map(|s| secret::digest(s).to_vec()),
        origins: json_list(&lists.origins.unwrap_or_default()),
        redirect_uris: json_list(&lists.redirect_uris.unwrap_or_default()),
        post_logout_redirect_uris: json_list(&lists.post_logout_redirect_uris.unwrap_or_default()),
        scopes: scopes.join(" "),
        created_at: now,
        updated_at: now,
    };
    store.create_client(&client).await?;
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
    let list = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|_| json!([]));
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "confidential": c.confidential,
        "first_party": c.first_party,
        "origins": list(&c.origins),
        "redirect_uris": list(&c.redirect_uris),
        "post_logout_redirect_uris": list(&c.post_logout_redirect_uris),
        "scopes": c.scopes.split_ascii_whitespace().collect::<Vec<_>>(),
        "created_at": c.created_at.to_string(),
        "updated_at": c.updated_at.to_string(),
    })
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
    let mut client = find(store, client_id).await?;
    let lists = check(settings)?;
    if let Some(name) = name {
        check_name(&name)?;
        client.name = name;
    }
    if let Some(first_party) = first_party {
        client.first_party = first_party;
    }
    if let Some(origins) = lists.origins {
        client.origins = json_list(&origins);
    }
    if no_origins {
        client.origins = json_list(&[]);
    }
    if let Some(uris) = lists.redirect_uris {
        client.redirect_uris = json_list(&uris);
    }
    if let Some(uris) = lists.post_logout_redirect_uris {
        client.post_logout_redirect_uris = json_list(&uris);
    }
    if let Some(scopes) = lists.scopes {
        client.scopes = scopes.join(" ");
    }
    client.updated_at = Clock::system().now();
    anyhow::ensure!(store.update_client(&client).await?, "no client `{client_id}`");
    print_client(&client, false);
    Ok(())
}

async fn rotate_secret(store: &dyn Store, client_id: &str, json: bool) -> anyhow::Result<()> {
    let mut client = find(store, client_id).await?;
    anyhow::ensure!(client.confidential, "client `{client_id}` is public: it has no secret");
    let secret = secret::random_token();
    client.secret_hash = Some(secret::digest(&secret).to_vec());
    client.updated_at = Clock::system().now();
    match store.update_client(&client).await {
        Ok(true) => {}
        Ok(false) => anyhow::bail!("no client `{client_id}`"),
        Err(StoreError::Conflict(_)) => anyhow::bail!("client `{client_id}` changed meanwhile; try again"),
        Err(e) => return Err(e.into()),
    }
    print_secret(client_id, Some(&secret), json);
    Ok(())
}
