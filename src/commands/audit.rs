//! `latch audit`: the audit log, newest first, as a table or JSON Lines.

use crate::auth::audit::EventView;
use crate::cli::AuditArgs;
use crate::clock::Clock;
use crate::config::{Config, parse_duration};
use crate::domain::{Timestamp, UserId};
use crate::store::{EventQuery, EventType};

use super::{print_lines, print_table};

/// Most events one run prints.
const MAX_LIMIT: u32 = 100_000;

/// Runs `latch audit`.
pub(super) async fn run(args: AuditArgs, config: Config) -> anyhow::Result<()> {
    let types = args
        .types
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(|t| {
            EventType::parse(t).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                anyhow::anyhow!("--type: unknown event type `{t}`; one of {}", known.join(", "))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let since = args.since.as_deref().map(|t| time_arg("--since", t)).transpose()?;
    let until = args.until.as_deref().map(|t| time_arg("--until", t)).transpose()?;
    anyhow::ensure!((1..=MAX_LIMIT).contains(&args.limit), "--limit must be from 1 to {MAX_LIMIT}");
    let store = super::open_store(&config).await?;
    let user = match args.user.as_deref() {
        // A deleted account's events stay: its id still finds them.
        Some(who) => Some(match super::find_user(&*store, who).await {
            Ok(user) => user.id,
            Err(e) => UserId::parse(who).ok_or(e)?,
        }),
        None => None,
    };
    let query = EventQuery { user, actor: None, outcome: None, types, since, until, after: None, limit: args.limit };
    let events: Vec<EventView> = store.events(&query).await?.into_iter().map(EventView::from).collect();
    if args.json {
        return print_lines(events.iter().map(|e| serde_json::to_string(e).unwrap_or_default()));
    }
    let rows = events
        .iter()
        .map(|e| {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            let actor = match &e.actor.id {
                Some(id) => format!("{}:{id}", e.actor.kind),
                None => e.actor.kind.clone(),
            };
            [
                e.time.to_string(),
                e.kind.clone(),
                e.outcome.clone(),
                actor,
                or_dash(e.user_id.map(|u| u.to_string())),
                or_dash(e.ip.clone()),
                escape(&e.details.to_string()),
            ]
        })
        .collect();
    print_table(["TIME", "TYPE", "OUTCOME", "ACTOR", "USER", "IP", "DETAILS"], rows)?;
    eprintln!("{} event(s)", events.len());
    Ok(())
}

/// `--since` or `--until`: an RFC 3339 time, or a duration before now; within the years
/// 1 to 9999.
fn time_arg(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    let refused = || anyhow::anyhow!("{flag}: `{text}` is neither an RFC 3339 time nor a duration like 24h");
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let ago = parse_duration(text).map_err(|_| refused())?;
    let t = Clock::system().now().get().checked_sub(time::Duration::try_from(ago).map_err(|_| refused())?);
    t.and_then(Timestamp::checked).ok_or_else(refused)
}

/// Control characters and the invisible ones that reorder or hide text (bidirectional
/// overrides, zero-width characters) shown escaped, so that a stored value can neither
/// move the terminal nor disguise itself.
fn escape(text: &str) -> String {
    let hidden = |c: char| c.is_control() || crate::domain::is_hidden(c);
    text.chars().flat_map(|c| if hidden(c) { c.escape_unicode().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_characters_are_shown_escaped() {
        assert_eq!(super::escape("a\u{202e}b\u{200b}c\x1b[2J"), "a\\u{202e}b\\u{200b}c\\u{1b}[2J");
        assert_eq!(super::escape("plain é"), "plain é");
    }
}
