//! Values parsed at the edge: once built, a `Username`, `Email` or `NewPassword` is
//! known to follow the field rules of the contract. Ids and timestamps have types of
//! their own, from the handlers down to the store.

mod email;
mod ids;
pub mod input;
mod password;
pub mod roles;
mod timestamp;
mod username;

pub use email::{Email, is_hidden};
pub use ids::{EventId, PasskeyId, SessionId, UserId};
pub use password::{NewPassword, PasswordPolicy};
pub use timestamp::Timestamp;
pub use username::Username;

/// A rule a field broke, with a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
