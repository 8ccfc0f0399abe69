//! The texts of the emails Latch sends. Links come from the configured templates
//! (`LATCH_EMAIL_VERIFY_URL`, `LATCH_PASSWORD_RESET_URL`), never from a request's
//! `Host`; every value put into the HTML part is escaped. The HTML part wears the
//! hosted pages' theme (title, logo, accent colour) with inline styles, since mail
//! readers drop stylesheets; the plain text part carries the same words and the link
//! verbatim.

use super::{Outgoing, html_escape};
use crate::settings::Theme;
use crate::store::UserRecord;

/// The link that confirms the user's address; it works once, for 24 hours.
pub fn verification(theme: &Theme, user: &UserRecord, link: &str) -> Outgoing {
    let text = format!(
        "Hello {name},\n\nconfirm your email address by opening this link:\n\n{link}\n\n\
         The link works once, for 24 hours. If you did not ask for this, ignore this email.\n",
        name = user.username
    );
    let html = layout(
        theme,
        "Confirm your email address",
        &format!(
            "<p>Hello {name},</p><p>confirm your email address by opening this link:</p>{button}\
             <p>The link works once, for 24 hours. If you did not ask for this, ignore this email.</p>",
            name = html_escape(&user.username),
            button = button(theme, link, "Confirm my address"),
        ),
    );
    Outgoing { to: user.email.clone(), subject: "Confirm your email address".into(), text, html }
}

/// The link that sets a new password; it works once, for one hour.
pub fn password_reset(theme: &Theme, user: &UserRecord, link: &str) -> Outgoing {
    let text = format!(
        "Hello {name},\n\nsomeone asked to reset the password of your account. To choose a new\n\
         password, open this link:\n\n{link}\n\n\
         The link works once, for one hour. If you did not ask for this, ignore this email:\n\
         your password stays as it is.\n",
        name = user.username
    );
    let html = layout(
        theme,
        "Reset your password",
        &format!(
            "<p>Hello {name},</p><p>someone asked to reset the password of your account. To choose a new \
             password, open this link:</p>{button}<p>The link works once, for one hour. If you did not ask \
             for this, ignore this email: your password stays as it is.</p>",
            name = html_escape(&user.username),
            button = button(theme, link, "Choose a new password"),
        ),
    );
    Outgoing { to: user.email.clone(), subject: "Reset your password".into(), text, html }
}

/// Tells the previous address that the account's email changed.
pub fn email_changed(theme: &Theme, old_email: &str, user: &UserRecord) -> Outgoing {
    let text = format!(
        "Hello {name},\n\nthe email address of your account was changed to {new}.\n\n\
         If you did not do this, reset your password and contact the site's administrator.\n",
        name = user.username,
        new = user.email
    );
    let html = layout(
        theme,
        "Your email address was changed",
        &format!(
            "<p>Hello {name},</p><p>the email address of your account was changed to {new}.</p>\
             <p>If you did not do this, reset your password and contact the site's administrator.</p>",
            name = html_escape(&user.username),
            new = html_escape(&user.email)
        ),
    );
    Outgoing { to: old_email.to_owned(), subject: "Your email address was changed".into(), text, html }
}

/// Tells the account's address that its password was changed or reset.
pub fn password_changed(theme: &Theme, user: &UserRecord) -> Outgoing {
    let text = format!(
        "Hello {name},\n\nthe password of your account was changed.\n\n\
         If you did not do this, reset your password at once and contact the site's administrator.\n",
        name = user.username
    );
    let html = layout(
        theme,
        "Your password was changed",
        &format!(
            "<p>Hello {name},</p><p>the password of your account was changed.</p>\
             <p>If you did not do this, reset your password at once and contact the site's administrator.</p>",
            name = html_escape(&user.username)
        ),
    );
    Outgoing { to: user.email.clone(), subject: "Your password was changed".into(), text, html }
}

/// Tells the account's owner that a second factor was added or removed; `change` says
/// what happened, as a sentence's end ("an authenticator app was added").
pub fn factor_changed(theme: &Theme, user: &UserRecord, change: &str) -> Outgoing {
    let text = format!(
        "Hello {name},\n\non your account, {change}.\n\n\
         If you did not do this, reset your password at once and ask the site's administrator to remove \
         the second factors of your account.\n",
        name = user.username
    );
    let html = layout(
        theme,
        "Your sign-in methods changed",
        &format!(
            "<p>Hello {name},</p><p>on your account, {change}.</p>\
             <p>If you did not do this, reset your password at once and ask the site's administrator to \
             remove the second factors of your account.</p>",
            name = html_escape(&user.username),
            change = html_escape(change),
        ),
    );
    Outgoing { to: user.email.clone(), subject: "Your sign-in methods changed".into(), text, html }
}

/// A link as an accent-coloured button, with the address written out below it for mail
/// readers that show no buttons.
fn button(theme: &Theme, link: &str, label: &str) -> String {
    format!(
        "<p style=\"margin:24px 0\"><a href=\"{link}\" style=\"display:inline-block;padding:12px 20px;\
         background:{accent};color:{on_accent};font-weight:600;text-decoration:none;border-radius:4px\">{label}</a></p>\
         <p style=\"font-size:13px;color:#4a535e;word-break:break-all\">Or open this address: \
         <a href=\"{link}\" style=\"color:{link_color}\">{link}</a></p>",
        link = html_escape(link),
        accent = theme.accent,
        on_accent = theme.on_accent,
        link_color = theme.link,
        label = html_escape(label),
    )
}

/// The frame of every HTML part: the site's logo or name, a heading, the text.
fn layout(theme: &Theme, heading: &str, body: &str) -> String {
    let brand = match &theme.logo_url {
        Some(logo) => format!(
            "<img src=\"{logo}\" alt=\"{title}\" style=\"max-height:40px;max-width:200px\">",
            logo = html_escape(logo),
            title = html_escape(&theme.title)
        ),
        None => format!("<strong style=\"color:#4a535e\">{}</strong>", html_escape(&theme.title)),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{heading}</title></head>\
         <body style=\"margin:0;padding:24px 12px;background:#f3f5f8;color:#1b1f24;\
         font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif\">\
         <div style=\"max-width:520px;margin:0 auto;padding:24px;background:#ffffff;border-radius:8px;\
         border-top:4px solid {accent}\"><p style=\"margin:0 0 12px\">{brand}</p>\
         <h1 style=\"font-size:22px;margin:0 0 16px\">{heading}</h1>{body}</div></body></html>",
        heading = html_escape(heading),
        accent = theme.accent,
    )
    // Short lines keep the part in 7bit, where the link stays verbatim (RFC 5322 allows
    // 998 characters a line; quoted-printable would break `token=`).
    .replace("</p>", "</p>\n")
    .replace("</h1>", "</h1>\n")
    .replace("</head>", "</head>\n")
    .replace("<div ", "\n<div ")
}
