//! Request fields turned into domain values, in one place: each parser names every
//! bad field at once (`Vec<FieldError>`), and what it returns is valid by type, so no
//! handler re-checks or unwraps a field.

use super::{Email, FieldError, NewPassword, PasswordPolicy, Username};

/// Every field error of one request.
pub type FieldErrors = Vec<FieldError>;

/// A required text field: absent and empty are both "is required".
pub fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, FieldError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| FieldError::new(field, "is required"))
}

/// A required email address.
pub fn email(value: Option<&str>, field: &str) -> Result<Email, FieldError> {
    Email::parse(required(value, field)?).map_err(|message| FieldError::new(field, message))
}

/// A required new password under the policy; it may not be the username or email.
pub fn new_password(
    policy: &PasswordPolicy,
    value: Option<&str>,
    field: &str,
    username: Option<&Username>,
    email: Option<&Email>,
) -> Result<NewPassword, FieldError> {
    policy.check(required(value, field)?, username, email).map_err(|message| FieldError::new(field, message))
}

/// The fields of a registration.
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub password: NewPassword,
}

impl NewAccount {
    pub fn parse(
        policy: &PasswordPolicy,
        username: Option<&str>,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, FieldErrors> {
        let username = required(username, "username")
            .and_then(|u| Username::parse(u).map_err(|message| FieldError::new("username", message)));
        let email = self::email(email, "email");
        let password = new_password(policy, password, "password", username.as_ref().ok(), email.as_ref().ok());
        match (username, email, password) {
            (Ok(username), Ok(email), Ok(password)) => Ok(Self { username, email, password }),
            (username, email, password) => Err(errors([username.err(), email.err(), password.err()])),
        }
    }
}

/// The optional fields of a profile change; `None` leaves a field alone.
pub struct ProfileUpdate {
    pub username: Option<Username>,
    pub email: Option<Email>,
}

impl ProfileUpdate {
    pub fn parse(username: Option<&str>, email: Option<&str>) -> Result<Self, FieldErrors> {
        let username =
            username.map(Username::parse).transpose().map_err(|message| FieldError::new("username", message));
        let email = email.map(Email::parse).transpose().map_err(|message| FieldError::new("email", message));
        match (username, email) {
            (Ok(username), Ok(email)) => Ok(Self { username, email }),
            (username, email) => Err(errors([username.err(), email.err()])),
        }
    }
}

/// A single-use token and a new password (password reset).
pub struct TokenAndPassword<'a> {
    pub token: &'a str,
    pub new_password: &'a str,
}

impl<'a> TokenAndPassword<'a> {
    /// Only presence is checked here: the password rules depend on the account, which
    /// the token names.
    pub fn parse(token: Option<&'a str>, new_password: Option<&'a str>) -> Result<Self, FieldErrors> {
        match (required(token, "token"), required(new_password, "new_password")) {
            (Ok(token), Ok(new_password)) => Ok(Self { token, new_password }),
            (token, password) => Err(errors([token.err(), password.err()])),
        }
    }
}

fn errors<const N: usize>(found: [Option<FieldError>; N]) -> FieldErrors {
    found.into_iter().flatten().collect()
}
