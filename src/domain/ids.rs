//! Identifiers of users and sessions. Distinct types, so that a user's id can never be
//! passed where a session's is meant (`delete_user_session(user, session)`).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(self) -> Uuid {
                self.0
            }

            /// Reads an id from text; `None` when it is no UUID.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::parse_str(text).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's id: a UUIDv7, so that ids sort by creation time.
    UserId
);

id_type!(
    /// A session's id: the `sid` claim of its access tokens.
    SessionId
);

id_type!(
    /// An audit event's id: a UUIDv7, so that events made in one second still sort in
    /// the order they happened.
    EventId
);

id_type!(
    /// A passkey's id in Latch (not its WebAuthn credential id, which is the
    /// authenticator's).
    PasskeyId
);

impl PasskeyId {
    /// A UUIDv7: an account's passkeys list in the order they were added.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl EventId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl UserId {
    /// A new id for an account created now.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl SessionId {
    /// A new random id: nothing about a session may be guessed from another's.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}
