//! Introspection against a real `latch serve`, as a confidential client made with
//! `latch client create --confidential --json`.

use std::time::{Duration, Instant};

use latch_client::{ErrorKind, Introspector};
use serde_json::Value;

use crate::support::*;

/// A new confidential client, `(client_id, client_secret)`, once the running server
/// knows it: a client made by `latch client` reaches a running server within a second
/// or so, as other instances' changes do.
async fn confidential_client(latch: &Latch) -> (String, String) {
    let out = latch.cli(&["client", "create", "--name", "orders-api", "--confidential", "--json"]);
    let created: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("`latch client create --json` printed no JSON ({e}): {:?}", out.stdout));
    let field = |name: &str| created[name].as_str().unwrap_or_else(|| panic!("no {name} in {created}")).to_owned();
    let (id, secret) = (field("client_id"), field("client_secret"));
    let introspector = Introspector::new(format!("{}/introspect", latch.base), &id, &secret).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match introspector.introspect("no token").await {
            Ok(answer) => {
                assert!(!answer.active);
                break;
            }
            Err(e) if e.kind() == ErrorKind::ClientRejected && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the new client cannot introspect 5 s after `latch client create`: {e:?}"),
        }
    }
    (id, secret)
}

#[tokio::test]
async fn a_live_token_is_active_until_its_session_ends() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let (client_id, client_secret) = confidential_client(&latch).await;
    let introspector = Introspector::discover(&latch.base, &client_id, &client_secret).await.unwrap();

    let live = introspector.introspect(&user.access_token).await.unwrap();
    assert!(live.active, "{live:?}");
    assert_eq!(live.sub, Some(user.id));
    assert_eq!(live.username.as_deref(), Some("alice"));
    assert_eq!(live.client_id.as_deref(), Some("latch"));
    assert_eq!(live.iss.as_deref(), Some(latch.base.as_str()));
    assert_eq!(live.aud.as_deref(), Some(latch.base.as_str()));
    assert_eq!(live.token_type.as_deref(), Some("access_token"));
    assert!(live.sid.is_some() && live.exp.is_some() && live.iat.is_some(), "{live:?}");
    assert!(live.has_scope("openid"));

    latch.logout(&user.access_token).await;
    let ended = introspector.introspect(&user.access_token).await.unwrap();
    assert!(!ended.active, "{ended:?}");
    assert_eq!(ended.sub, None);

    assert!(!introspector.introspect("not a token").await.unwrap().active);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let (client_id, _) = confidential_client(&latch).await;
    // The client is known (confidential_client waited for that): only the secret is wrong.
    let introspector = Introspector::new(format!("{}/introspect", latch.base), client_id, "wrong").unwrap();
    let e = introspector.introspect(&user.access_token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ClientRejected, "{e:?}");
    assert!(!e.is_invalid_token());
}
