//! Role names and the set of them a user holds. A set is stored as its names sorted
//! and joined by single spaces, so that the text form is also the canonical one.

use std::collections::BTreeSet;

use crate::domain::FieldError;

/// The role that opens the admin API.
pub const ADMIN: &str = "admin";

/// Longest role name.
pub const MAX_ROLE_CHARS: usize = 64;

/// Most roles one user may hold.
pub const MAX_ROLES: usize = 32;

/// `name` as a role name: 1–64 characters of `[A-Za-z0-9_.:-]`, case kept.
pub fn parse(name: &str, field: &str) -> Result<String, FieldError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_ROLE_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if valid {
        Ok(name.to_owned())
    } else {
        let shown: String = name.chars().take(MAX_ROLE_CHARS + 1).collect();
        let message = format!("`{shown}` is not a role: 1–64 characters of letters, digits, '_', '.', ':' and '-'");
        Err(FieldError::new(field, message))
    }
}

/// The roles in a stored set.
pub fn split(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(' ').filter(|r| !r.is_empty())
}

/// The stored form of a set of roles; refuses more than [`MAX_ROLES`].
pub fn join(roles: &BTreeSet<String>, field: &str) -> Result<String, FieldError> {
    if roles.len() > MAX_ROLES {
        return Err(FieldError::new(field, format!("a user holds at most {MAX_ROLES} roles")));
    }
    Ok(roles.iter().map(String::as_str).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["admin", "billing:read", "team.lead", "a-b_c", &"x".repeat(64)] {
            assert_eq!(parse(good, "roles").as_deref(), Ok(good));
        }
        for bad in ["", "has space", "émoji", "a%b", "a\0", &"x".repeat(65)] {
            assert_eq!(parse(bad, "roles").unwrap_err().field, "roles", "{bad:?}");
        }
    }

    #[test]
    fn sets_are_sorted_and_bounded() {
        let set: BTreeSet<String> = ["support", "admin"].map(String::from).into();
        assert_eq!(join(&set, "roles").unwrap(), "admin support");
        assert_eq!(split("admin support").collect::<Vec<_>>(), ["admin", "support"]);
        assert_eq!(split("").count(), 0);
        let many: BTreeSet<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
        assert!(join(&many, "roles").is_err());
    }
}
