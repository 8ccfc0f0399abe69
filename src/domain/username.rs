//! Usernames: 3–32 characters of `[A-Za-z0-9_.-]`, unique regardless of case.

use std::fmt;

/// A valid username, kept with the case the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Checks the field rules.
    pub fn parse(value: &str) -> Result<Self, String> {
        let len = value.chars().count();
        if !(3..=32).contains(&len) {
            return Err("must be 3 to 32 characters long".to_owned());
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err("may contain only letters A-Z, digits, '_', '.' and '-'".to_owned());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["abc", "A.b-c_9", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_lengths_and_characters() {
        for bad in ["", "ab", &"x".repeat(33), "with space", "émile", "a@b", "semi;colon", "abc\n"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
