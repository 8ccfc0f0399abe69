"""The exceptions of latch_client: what a caller must tell apart to answer correctly.

A refused token (answer 401) is not a Latch that cannot be reached (answer 503), and
neither is a valid token that lacks a scope or role (answer 403).
"""

from __future__ import annotations

from typing import Iterable


class LatchError(Exception):
    """Base class of every error raised by latch_client."""


class InvalidToken(LatchError):
    """The token is not a valid Latch access token: malformed, badly signed, of the
    wrong type, for another issuer or audience, expired, or missing a required claim.
    Answer 401 with ``WWW-Authenticate: Bearer error="invalid_token"``."""


class ExpiredToken(InvalidToken):
    """The token's ``exp`` has passed (beyond the leeway)."""


class UnknownKey(InvalidToken):
    """The token names a ``kid`` that the issuer's JWKS does not publish, even after a
    refetch (or a refetch was not allowed yet: refetches are rate-limited)."""


class InactiveToken(InvalidToken):
    """Introspection says the token is no longer active (logged out, revoked, expired)."""


class InsufficientScope(LatchError):
    """The token is valid but lacks required scopes or roles.
    Answer 403 with ``WWW-Authenticate: Bearer error="insufficient_scope"``."""

    def __init__(self, missing_scopes: Iterable[str] = (), missing_roles: Iterable[str] = ()) -> None:
        self.missing_scopes: tuple[str, ...] = tuple(missing_scopes)
        self.missing_roles: tuple[str, ...] = tuple(missing_roles)
        parts = []
        if self.missing_scopes:
            parts.append("missing scopes: " + " ".join(self.missing_scopes))
        if self.missing_roles:
            parts.append("missing roles: " + " ".join(self.missing_roles))
        super().__init__("; ".join(parts) or "insufficient scope")


class LatchUnavailable(LatchError):
    """Latch's discovery document, JWKS or introspection endpoint could not be read, or
    answered something unusable. Not the token's fault: answer 503."""


class IntrospectionError(LatchError):
    """Latch refused the introspection request itself, typically because the client id
    or secret is wrong (HTTP 401). A configuration error, not the token's fault."""
