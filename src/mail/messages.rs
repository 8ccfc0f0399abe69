//! The texts of the emails Latch sends. Links come from the configured templates
//! (`LATCH_EMAIL_VERIFY_URL`, `LATCH_PASSWORD_RESET_URL`), never from a request's
//! `Host`; every value put into the HTML part is escaped.

use super::{Outgoing, html_escape};
use crate::store::UserRecord;

/// The link that confirms the user's address; it works once, for 24 hours.
pub fn verification(user: &UserRecord, link: &str) -> Outgoing {
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
        link = html_escape(link)
    );
    Outgoing { to: user.email.clone(), subject: "Confirm your email address".into(), text, html }
}

/// The link that sets a new password; it works once, for one hour.
pub fn password_reset(user: &UserRecord, link: &str) -> Outgoing {
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
        link = html_escape(link)
    );
    Outgoing { to: user.email.clone(), subject: "Reset your password".into(), text, html }
}

/// Tells the previous address that the account's email changed.
pub fn email_changed(old_email: &str, user: &UserRecord) -> Outgoing {
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
    Outgoing { to: old_email.to_owned(), subject: "Your email address was changed".into(), text, html }
}

/// Tells the account's address that its password was changed or reset.
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
