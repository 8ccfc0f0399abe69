//! Emails that carry a single-use token (address verification, password reset) and
//! notices (email or password changed). A failure to deliver is logged; it never fails
//! the request that caused it. The texts are in [`crate::mail::messages`].

use std::sync::Arc;

use time::Duration;

use crate::auth::secret;
use crate::clock::Clock;
use crate::mail::{Mailer, Outgoing, messages};
use crate::settings::{Links, Theme};
use crate::store::{NewOneTimeToken, Store, StoreError, TokenPurpose, UserRecord};

/// How long an email verification link works.
pub const VERIFY_EMAIL_TTL: Duration = Duration::hours(24);
/// How long a password reset link works.
pub const RESET_PASSWORD_TTL: Duration = Duration::hours(1);

/// Issues the tokens of emailed links and sends the account's emails.
#[derive(Clone)]
pub struct Emails {
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    clock: Clock,
    links: Links,
    theme: Theme,
}

impl Emails {
    pub fn new(store: Arc<dyn Store>, mailer: Arc<dyn Mailer>, clock: Clock, links: Links, theme: Theme) -> Self {
        Self { store, mailer, clock, links, theme }
    }

    /// A new single-use token for the user's current address, stored as its digest.
    async fn issue_token(&self, user: &UserRecord, purpose: TokenPurpose, ttl: Duration) -> Result<String, StoreError> {
        let token = secret::random_token();
        let now = self.clock.now();
        self.store
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
    pub async fn send_verification(&self, user: &UserRecord) -> Result<(), StoreError> {
        let token = self.issue_token(user, TokenPurpose::VerifyEmail, VERIFY_EMAIL_TTL).await?;
        let link = Links::fill(&self.links.email_verify, &token);
        self.deliver(messages::verification(&self.theme, user, &link)).await;
        Ok(())
    }

    /// Creates a password reset token (voiding earlier ones) and emails its link.
    pub async fn send_password_reset(&self, user: &UserRecord) -> Result<(), StoreError> {
        let token = self.issue_token(user, TokenPurpose::ResetPassword, RESET_PASSWORD_TTL).await?;
        let link = Links::fill(&self.links.password_reset, &token);
        self.deliver(messages::password_reset(&self.theme, user, &link)).await;
        Ok(())
    }

    /// Tells the previous address that the account's email changed.
    pub async fn send_email_changed(&self, old_email: &str, user: &UserRecord) {
        self.deliver(messages::email_changed(&self.theme, old_email, user)).await;
    }

    /// Tells the account's address that its password was changed or reset.
    pub async fn send_password_changed(&self, user: &UserRecord) {
        self.deliver(messages::password_changed(&self.theme, user)).await;
    }

    /// Tells the account's address that a second factor was added or removed.
    pub async fn send_factor_changed(&self, user: &UserRecord, change: &str) {
        self.deliver(messages::factor_changed(&self.theme, user, change)).await;
    }

    async fn deliver(&self, message: Outgoing) {
        let subject = message.subject.clone();
        if let Err(e) = self.mailer.send(message).await {
            tracing::error!(subject = %subject, error = format!("{e:#}"), "email not sent");
        }
    }
}
