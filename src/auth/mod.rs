//! Authentication, free of HTTP: sessions and the password checks that start them
//! ([`sessions::Sessions`]), accounts and what changes them ([`accounts::Accounts`]),
//! password hashing, access tokens and their keys, opaque secrets, abuse limits, and
//! the emails that prove an address. Handlers call these services with domain values
//! and map their errors to responses.

pub mod accounts;
pub mod cache;
pub mod emails;
pub mod kek;
pub mod limits;
pub mod password;
pub mod secret;
pub mod sessions;
pub mod tokens;
