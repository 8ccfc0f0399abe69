//! New passwords: length limits, the bundled list of common passwords, and not the
//! username or email. Unicode is allowed and kept exactly as received.

use std::collections::HashSet;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::{Email, Username};

/// Upper bound on password length, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Common passwords of 8 characters or more (from Django's list), lowercased.
static COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// The rules a new password must meet.
#[derive(Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
    common: Arc<HashSet<&'static str>>,
}

impl PasswordPolicy {
    /// The fewest characters a password may have.
    pub fn min_length(&self) -> usize {
        self.min_chars
    }

    pub fn new(min_chars: usize) -> Self {
        let common = COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Self { min_chars, common: Arc::new(common) }
    }

    /// Checks `password` for an account with this username and email (when known).
    pub fn check(
        &self,
        password: &str,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<NewPassword, String> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(format!("must be at least {} characters long", self.min_chars));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters long"));
        }
        let lower = password.to_lowercase();
        if self.common.contains(lower.as_str()) {
            return Err("is too common; choose a password that is harder to guess".to_owned());
        }
        let same_as = |other: &str| lower == other.to_lowercase();
        if username.is_some_and(|u| same_as(u.as_str())) || email.is_some_and(|e| same_as(e.as_str())) {
            return Err("must not be the same as your username or email".to_owned());
        }
        Ok(NewPassword(SecretString::from(password.to_owned())))
    }
}

/// A password that passed the policy, waiting to be hashed.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &PasswordPolicy, pw: &str) -> Result<NewPassword, String> {
        policy.check(pw, Some(&Username::parse("alice").unwrap()), Some(&Email::parse("alice@example.com").unwrap()))
    }

    #[test]
    fn length_limits_count_characters() {
        let p = PasswordPolicy::new(8);
        assert!(check(&p, "short").is_err());
        assert!(check(&p, "ünïcödé").is_err(), "7 characters, more bytes");
        assert!(check(&p, "ünïcödé!").is_ok());
        assert!(check(&p, &"x1".repeat(128)).is_ok());
        assert!(check(&p, &"x1".repeat(128).replace("x1x", "x1xy")).is_err());
        assert!(check(&PasswordPolicy::new(12), "tr0ub4dor&3").is_err());
    }

    #[test]
    fn refuses_common_and_personal_passwords() {
        let p = PasswordPolicy::new(8);
        for bad in ["password", "Password1", "12345678", "qwertyuiop", "iloveyou", "ALICE@EXAMPLE.COM"] {
            assert!(check(&p, bad).is_err(), "{bad}");
        }
        let r = p.check("Alice123!", Some(&Username::parse("alice123").unwrap()), None);
        assert!(r.is_ok());
        let r = p.check("LongUserName", Some(&Username::parse("longusername").unwrap()), None);
        assert!(r.is_err());
    }
}
