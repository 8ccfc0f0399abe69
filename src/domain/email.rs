//! Email addresses: syntactically valid, at most 254 bytes, stored lowercased.

use std::fmt;

/// Whether `c` is invisible and reorders or hides text (bidirectional controls,
/// zero-width characters) or is a Unicode noncharacter: text holding one can pass for
/// other text.
pub fn is_hidden(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
        || matches!(c, '\u{fdd0}'..='\u{fdef}')
        || (c as u32) & 0xfffe == 0xfffe
}

/// A valid, lowercased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks the address and lowercases it.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if value.len() > 254 {
            return Err("must be at most 254 bytes".to_owned());
        }
        let invalid = || "is not a valid email address".to_owned();
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        // Quoted local parts and address literals are valid RFC 5322 but not deliverable
        // in practice, and make a poor login name.
        // Invisible characters that reorder or hide text, and noncharacters, make an
        // address that looks like another.
        if local.starts_with('"')
            || domain.starts_with('[')
            || value.chars().any(|c| c.is_whitespace() || c.is_control() || is_hidden(c))
        {
            return Err(invalid());
        }
        if !email_address::EmailAddress::is_valid(value) {
            return Err(invalid());
        }
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok {
            return Err(invalid());
        }
        Ok(Self(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases() {
        assert_eq!(Email::parse("Alice@Example.COM").unwrap().as_str(), "alice@example.com");
    }

    #[test]
    fn accepts_common_addresses() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "x_y-z@localhost", "o'neil@example.ie"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@exa mple.com",
            "a@-x.com",
            "a@x..com",
            "b\u{202e}\u{2066}x@example.com",
            "zero\u{200b}width@example.com",
            "qq\u{10ffff}z@example.com",
            &long,
            "\"q\"@x.com",
            "a@[127.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
