//! latch-client against a real `latch serve` (tokens, discovery, rotation,
//! introspection, the axum extractor) and against a local issuer whose keys the tests
//! hold (expiry, forged headers, the refetch rate limit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod extractor;
mod introspection;
mod refetch;
mod support;
mod with_latch;
