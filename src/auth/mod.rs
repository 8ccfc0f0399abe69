//! Authentication: password hashing, access tokens and their keys, opaque secrets,
//! logins and the emails that prove an address.

pub mod cache;
pub mod emails;
pub mod kek;
pub mod limits;
pub mod login;
pub mod password;
pub mod secret;
pub mod tokens;
