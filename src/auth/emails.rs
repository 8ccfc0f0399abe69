//! Emails that carry a single-use token (address verification) and notices (email
//! changed). Links come from the configured templates, never from a request's `Host`.
//! A failure to deliver is logged; it never fails the request that caused it.

use time::Duration;

use crate::auth::secret;
use crate::http::state::{AppState, Settings};
use crate::mail::{Outgoing, html_escape};
use crate::store::{self, NewOneTimeToken, TokenPurpose, UserRecord};

/// How long an email verification link works.
pub const VERIFY_EMAIL_TTL: Duration = Duration::hours(24);

/// A new single-use token for the user's current address, stored as its digest.
async fn issue_token(
    state: &AppState,
    user: &UserRecord,
    purpose: TokenPurpose,
    ttl: Duration,
) -> Result<String, crate::error::ApiError> {
    let token = secret::random_token();
    let now = store::now();
    state
        .store
        .insert_one_time_token(&NewOneTimeToken {
            hash: &secret::digest(&token),
            user_id: user.id,
            purpose,
            email: &user.email,
            now,
            expires_at: now + ttl,
        })
        .await?;
    Ok(token)
}

/// Creates a verification token for the user's current address and emails its link.
pub async fn send_verification(state: &AppState, user: &UserRecord) -> Result<(), crate::error::ApiError> {
    let token = issue_token(state, user, TokenPurpose::VerifyEmail, VERIFY_EMAIL_TTL).await?;
    let link = Settings::link(&state.settings.email_verify_url, &token);
    let text = format!(
        "Hello {name},\n\nconfirm your email address by opening this link:\n\n{link}\n\n\
         The link works once, for 24 hours. If you did not ask for this, ignore this email.\n",
        name = user.username
    );
    let html = format!(
        "<p>Hello {name},</p><p>confirm your email address by opening this link:</p>\
         <p><a href=\"{link}\">{link}</a></p><p>The link works once, for 24 hours. \
         If you did not ask for this, ignore this email.</p>",
        name = html_escape(&user.username),
        link = html_escape(&link)
    );
    deliver(state, Outgoing { to: user.email.clone(), subject: "Confirm your email address".into(), text, html }).await;
    Ok(())
}

/// How long a password reset link works.
pub const RESET_PASSWORD_TTL: Duration = Duration::hours(1);

/// Creates a password reset token and emails its link.
pub async fn send_password_reset(state: &AppState, user: &UserRecord) -> Result<(), crate::error::ApiError> {
    let token = issue_token(state, user, TokenPurpose::ResetPassword, RESET_PASSWORD_TTL).await?;
    let link = Settings::link(&state.settings.password_reset_url, &token);
    let text = format!(
        "Hello {name},\n\nsomeone asked to reset the password of your account. To choose a new\n\
         password, open this link:\n\n{link}\n\n\
         The link works once, for one hour. If you did not ask for this, ignore this email:\n\
         your password stays as it is.\n",
        name = user.username
    );
    let html = format!(
        "<p>Hello {name},</p><p>someone asked to reset the password of your account. To choose a new \
         password, open this link:</p><p><a href=\"{link}\">{link}</a></p><p>The link works once, for one \
         hour. If you did not ask for this, ignore this email: your password stays as it is.</p>",
        name = html_escape(&user.username),
        link = html_escape(&link)
    );
    deliver(state, Outgoing { to: user.email.clone(), subject: "Reset your password".into(), text, html }).await;
    Ok(())
}

/// Tells the previous address that the account's email changed.
pub async fn send_email_changed(state: &AppState, old_email: &str, user: &UserRecord) {
    let text = format!(
        "Hello {name},\n\nthe email address of your account was changed to {new}.\n\n\
         If you did not do this, reset your password and contact the site's administrator.\n",
        name = user.username,
        new = user.email
    );
    let html = format!(
        "<p>Hello {name},</p><p>the email address of your account was changed to {new}.</p>\
         <p>If you did not do this, reset your password and contact the site's administrator.</p>",
        name = html_escape(&user.username),
        new = html_escape(&user.email)
    );
    deliver(state, Outgoing { to: old_email.to_owned(), subject: "Your email address was changed".into(), text, html })
        .await;
}

/// Tells the account's address that its password was changed or reset.
pub async fn send_password_changed(state: &AppState, user: &UserRecord) {
    deliver(state, password_changed(user)).await;
}

/// The notice of a changed password, also sent by `latch user set-password`.
pub fn password_changed(user: &UserRecord) -> Outgoing {
    let text = format!(
        "Hello {name},\n\nthe password of your account was changed.\n\n\
         If you did not do this, reset your password at once and contact the site's administrator.\n",
        name = user.username
    );
    let html = format!(
        "<p>Hello {name},</p><p>the password of your account was changed.</p>\
         <p>If you did not do this, reset your password at once and contact the site's administrator.</p>",
        name = html_escape(&user.username)
    );
    Outgoing { to: user.email.clone(), subject: "Your password was changed".into(), text, html }
}

async fn deliver(state: &AppState, message: Outgoing) {
    let subject = message.subject.clone();
    if let Err(e) = state.mailer.send(message).await {
        tracing::error!(subject = %subject, error = format!("{e:#}"), "email not sent");
    }
}
