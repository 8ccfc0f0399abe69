//! `latch user create|list|show|disable|enable|delete|set-password|roles|reset-mfa`. Passwords come
//! from a prompt without echo or from one line of standard input, never from argv
//! (which other local users can read in the process list), and follow the same rules
//! as registration.

use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;

use super::{print_lines, print_table};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::auth::password::{self, PasswordHasher};
use crate::cli::UserCommand;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{Email, FieldError, PasswordPolicy, UserId, Username, roles};
use crate::store::{
    Actor, AdminChange, AdminUpdate, AuditEvent, EventType, KeepSessions, NewUser, StoreError, UserRecord,
};

/// Runs `latch user …`.
pub(super) async fn run(command: UserCommand, config: Config) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { username, email, admin, password_stdin } => {
            create(&config, &username, &email, admin, password_stdin).await
        }
        UserCommand::List { json } => list(&config, json).await,
        UserCommand::Show { user, json } => show(&config, &user, json).await,
        UserCommand::Disable { user } => set_disabled(&config, &user, true).await,
        UserCommand::Enable { user } => set_disabled(&config, &user, false).await,
        UserCommand::Delete { user } => delete(&config, &user).await,
        UserCommand::SetPassword { user, password_stdin } => set_password(&config, &user, password_stdin).await,
        UserCommand::Roles { user, add, remove, json } => change_roles(&config, &user, &add, &remove, json).await,
        UserCommand::ResetMfa { user } => reset_mfa(&config, &user).await,
    }
}

/// An event of the operator's, about `user`.
fn event(kind: EventType, user: UserId) -> AuditEvent {
    AuditEvent::new(kind, Actor::System, Clock::system().now()).user(user).detail("via", "cli")
}

async fn create(config: &Config, username: &str, email: &str, admin: bool, from_stdin: bool) -> anyhow::Result<()> {
    // Field errors are reported before asking for a password that could not be used.
    let parsed = (Username::parse(username), Email::parse(email));
    let (username, email) = match parsed {
        (Ok(u), Ok(e)) => (u, e),
        (u, e) => {
            let problems: Vec<String> = [("username", u.err()), ("email", e.err())]
                .into_iter()
                .filter_map(|(field, err)| err.map(|m| format!("{field} {m}")))
                .collect();
            anyhow::bail!("invalid input: {}", problems.join("; "));
        }
    };
    let store = super::open_store(config).await?;
    if let Some(field) = store.taken(Some(&username), Some(&email)).await? {
        anyhow::bail!("{field} already taken");
    }
    let password = read_password(from_stdin)?;
    let hash = hash_new_password(config, password.expose_secret(), &username, &email).await?;
    let now = Clock::system().now();
    let id = UserId::generate();
    let roles = if admin { roles::ADMIN } else { "" };
    // An operator vouches for the address, so the account does not wait for a
    // verification email (documented in docs/cli.md).
    let user = store
        .insert_user(
            &NewUser { id, username: &username, email: &email, email_verified: true, password_hash: &hash, roles, now },
            &event(EventType::Registration, id)
                .detail("username", username.as_str())
                .detail("roles", roles::split(roles).collect::<Vec<_>>()),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(field) => anyhow::anyhow!("{field} already taken"),
            e => anyhow::Error::from(e),
        })?;
    let role = if user.has_role(roles::ADMIN) { "administrator" } else { "user" };
    // The id alone on standard output, for `id=$(latch user create …)`.
    eprintln!("created {role} {} ({}, {})", user.id, user.username, user.email);
    println!("{}", user.id);
    Ok(())
}

async fn list(config: &Config, as_json: bool) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let users = store.list_users().await?;
    if as_json {
        return print_lines(users.iter().map(|user| user_json(user).to_string()));
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let rows = users.iter().map(|u| {
        [
            u.id.to_string(),
            u.username.clone(),
            u.email.clone(),
            yes_no(u.email_verified).to_owned(),
            if u.roles.is_empty() { "-".to_owned() } else { u.roles.replace(' ', ",") },
            yes_no(u.disabled).to_owned(),
        ]
    });
    print_table(["ID", "USERNAME", "EMAIL", "VERIFIED", "ROLES", "DISABLED"], rows.collect())?;
    eprintln!("{} user(s)", users.len());
    Ok(())
}

async fn show(config: &Config, who: &str, as_json: bool) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    let now = Clock::system().now();
    let sessions = store.list_sessions(user.id, now, now - config.session_idle_timeout).await?.len();
    let scheme = match password::recognise(&user.password_hash) {
        Ok(_) if password::is_current_hash(&user.password_hash) => "argon2id (current)".to_owned(),
        Ok(scheme) => format!("{} (replaced by Argon2id at the next login)", scheme.name()),
        Err(_) => "unrecognised (the password cannot be verified)".to_owned(),
    };
    if as_json {
        let mut value = user_json(&user);
        value["updated_at"] = json!(user.updated_at.to_string());
        value["password_hash"] = json!(scheme);
        value["live_sessions"] = json!(sessions);
        println!("{value}");
        return Ok(());
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("id:             {}", user.id);
    println!("username:       {}", user.username);
    println!("email:          {}", user.email);
    println!("email verified: {}", yes_no(user.email_verified));
    println!("roles:          {}", if user.roles.is_empty() { "-" } else { &user.roles });
    println!("disabled:       {}", yes_no(user.disabled));
    println!("created at:     {}", user.created_at);
    println!("updated at:     {}", user.updated_at);
    println!("password hash:  {scheme}");
    println!("live sessions:  {sessions}");
    Ok(())
}

async fn set_disabled(config: &Config, who: &str, disabled: bool) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    if user.disabled == disabled {
        let state = if disabled { "disabled" } else { "enabled" };
        println!("{} ({}) is {state} already", user.username, user.id);
        return Ok(());
    }
    let kind = if disabled { EventType::UserDisabled } else { EventType::UserEnabled };
    let ended = store
        .set_disabled(user.id, disabled, Clock::system().now(), &event(kind, user.id).detail("disabled", disabled))
        .await?
        .with_context(|| gone(&user))?;
    if disabled {
        println!("disabled {} ({}); {ended} session(s) ended", user.username, user.id);
    } else {
        println!("enabled {} ({})", user.username, user.id);
    }
    Ok(())
}

async fn delete(config: &Config, who: &str) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    // Sessions, refresh tokens and one-time tokens go with the row (ON DELETE CASCADE).
    let deleted = event(EventType::UserDeleted, user.id).detail("username", user.username.as_str());
    if !store.delete_user(user.id, &deleted).await? {
        anyhow::bail!(gone(&user));
    }
    println!("deleted {} ({})", user.username, user.id);
    Ok(())
}

async fn set_password(config: &Config, who: &str, from_stdin: bool) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    let password = read_password(from_stdin)?;
    // Stored names passed the same rules once; an imported oddity just skips the
    // "not your username" comparison instead of blocking the reset.
    let username = Username::parse(&user.username).ok();
    let email = Email::parse(&user.email).ok();
    let policy = PasswordPolicy::new(config.password_min_length);
    let password =
        policy.check(password.expose_secret(), username.as_ref(), email.as_ref()).map_err(invalid_password)?;
    let hash = hasher()?.hash(password.expose()).await?;
    let ended = store
        .set_password(
            user.id,
            &hash,
            KeepSessions::None,
            Clock::system().now(),
            &event(EventType::PasswordChange, user.id),
        )
        .await?
        .with_context(|| gone(&user))?;
    println!("password of {} ({}) set; {ended} session(s) ended", user.username, user.id);
    // The owner learns of it as of any other change of password; the password is set
    // whether or not the notice goes out.
    notify(config, &user, |theme| crate::mail::messages::password_changed(theme, &user)).await;
    Ok(())
}

/// `latch user reset-mfa`: removes every factor and tells the owner.
async fn reset_mfa(config: &Config, who: &str) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    let removed = event(EventType::FactorRemoved, user.id).detail("factor", "all");
    if !store.reset_factors(user.id, &removed).await? {
        println!("{} ({}) has no second factor", user.username, user.id);
        return Ok(());
    }
    println!("second factors of {} ({}) removed; they sign in with their password", user.username, user.id);
    notify(config, &user, |theme| {
        crate::mail::messages::factor_changed(
            theme,
            &user,
            "an administrator removed your second factors; sign in with your password",
        )
    })
    .await;
    Ok(())
}

/// Sends the owner of `user` a notice of an operator's change, now; a failure is a
/// warning, since the change is made.
async fn notify(
    config: &Config,
    user: &UserRecord,
    message: impl FnOnce(&crate::settings::Theme) -> crate::mail::Outgoing,
) {
    let theme = crate::settings::Theme::new(
        &config.ui_title,
        config.ui_logo_url.as_deref(),
        config.ui_accent_color.as_deref(),
        config.public_url.as_deref().unwrap_or_default(),
    );
    let notice = message(&theme);
    match crate::mail::build(&config.mailer, &config.mail_from) {
        Ok(mailer) => match mailer.send_now(notice).await {
            Ok(()) => eprintln!("notice sent to {}", user.email),
            Err(e) => eprintln!("warning: the notice to {} was not sent: {e:#}", user.email),
        },
        Err(e) => eprintln!("warning: no mailer, the notice to {} was not sent: {e:#}", user.email),
    }
}

/// `latch user roles`: prints the roles after the change (`-` for none). The new set
/// is computed from the roles as the transaction sees them, so that a concurrent change
/// is not undone.
async fn change_roles(config: &Config, who: &str, add: &[String], remove: &[String], json: bool) -> anyhow::Result<()> {
    let named = |flag: &str, list: &[String]| -> anyhow::Result<Vec<String>> {
        list.iter().map(|r| roles::parse(r, flag).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))).collect()
    };
    let (add, remove) = (named("--add", add)?, named("--remove", remove)?);
    let store = super::open_store(config).await?;
    let user = super::find_user(&*store, who).await?;
    let user = if add.is_empty() && remove.is_empty() {
        user
    } else {
        let plan = |current: &UserRecord, _: u64| -> Result<Option<(AdminChange, Vec<AuditEvent>)>, FieldError> {
            let before: BTreeSet<&str> = current.roles().collect();
            let mut set: BTreeSet<String> = before.iter().map(|r| r.to_string()).collect();
            set.extend(add.iter().cloned());
            for role in &remove {
                set.remove(role);
            }
            let stored = roles::join(&set, "--add")?;
            if stored == current.roles {
                return Ok(None);
            }
            let added: Vec<&str> = set.iter().map(String::as_str).filter(|r| !before.contains(r)).collect();
            let removed: Vec<&str> = before.iter().copied().filter(|r| !set.contains(*r)).collect();
            let event = event(EventType::RolesChanged, current.id)
                .detail("roles_added", added)
                .detail("roles_removed", removed);
            Ok(Some((AdminChange { roles: Some(stored), ..AdminChange::default() }, vec![event])))
        };
        match store.admin_update(user.id, Clock::system().now(), &plan).await? {
            AdminUpdate::Updated { after, .. } => after,
            AdminUpdate::Unchanged(user) => user,
            AdminUpdate::Refused(e) => anyhow::bail!("{}: {}", e.field, e.message),
            AdminUpdate::NoUser => anyhow::bail!(gone(&user)),
        }
    };
    if json {
        println!("{}", json!(user.roles().collect::<Vec<_>>()));
    } else {
        println!("{}", if user.roles.is_empty() { "-" } else { &user.roles });
    }
    Ok(())
}

/// Checks the password policy for a new account and hashes the password.
async fn hash_new_password(
    config: &Config,
    password: &str,
    username: &Username,
    email: &Email,
) -> anyhow::Result<String> {
    let policy = PasswordPolicy::new(config.password_min_length);
    let password = policy.check(password, Some(username), Some(email)).map_err(invalid_password)?;
    Ok(hasher()?.hash(password.expose()).await?)
}

fn invalid_password(message: String) -> anyhow::Error {
    anyhow::anyhow!("invalid input: password {message}")
}

/// One hash at a time is all a command needs.
fn hasher() -> anyhow::Result<PasswordHasher> {
    PasswordHasher::new(1, 1)
}

fn gone(user: &UserRecord) -> String {
    format!("user {} ({}) was deleted meanwhile", user.username, user.id)
}

/// Reads a password from one line of standard input, or prompts twice on the
/// terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin {
        let mut line = String::new();
        let read =
            std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        if read == 0 {
            anyhow::bail!("--password-stdin: standard input is empty");
        }
        // Only the line ending is dropped: spaces are part of the password.
        let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
        return Ok(SecretString::from(password.to_owned()));
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        anyhow::bail!("no terminal to ask for the password on; pass it with --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second = rpassword::prompt_password("Repeat password: ").context("cannot read the password")?;
    if first != second {
        anyhow::bail!("the passwords do not match");
    }
    Ok(SecretString::from(first))
}

fn user_json(user: &UserRecord) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "admin": user.has_role(roles::ADMIN),
        "roles": user.roles().collect::<Vec<_>>(),
        "disabled": user.disabled,
        "created_at": user.created_at.to_string(),
    })
}
