"""The decision the framework integrations share: given a request's bearer token, the
claims to hand to the view, or the HTTP refusal to send (RFC 6750 §3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Union

from .claims import Claims
from .errors import InsufficientScope, InvalidToken, LatchUnavailable
from .introspection import Introspector
from .verifier import Verifier

logger = logging.getLogger("latch_client")


@dataclass(frozen=True)
class Denial:
    """A refusal: the status, the ``error`` code for the body, a human description and
    the response headers (``WWW-Authenticate``, ``Retry-After``)."""

    status: int
    error: str
    description: str
    headers: Mapping[str, str]

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authorize(
    verifier: Verifier,
    introspector: Optional[Introspector],
    token: Optional[str],
    scopes: Iterable[str],
    roles: Iterable[str],
    introspect: bool,
) -> Union[Claims, Denial]:
    """Verifies ``token`` and checks scopes and roles; introspects it too when asked.

    Configuration errors (:class:`~latch_client.IntrospectionError`: Latch refuses our
    client credentials) propagate, to become the framework's 500 and a logged traceback.
    """
    if not token:
        # RFC 6750 §3.1: no error code when the request carried no credentials.
        return Denial(401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    try:
        claims = verifier.verify(token)
        if introspect:
            if introspector is None:
                raise ValueError("introspect=True needs client_id and client_secret (or an Introspector)")
            introspector.require_active(token)
        claims.require(scopes, roles)
    except InvalidToken as error:
        return Denial(401, "invalid_token", str(error), {"WWW-Authenticate": challenge("invalid_token", str(error))})
    except InsufficientScope as error:
        scope = " ".join(error.missing_scopes) or None
        header = challenge("insufficient_scope", str(error), scope)
        return Denial(403, "insufficient_scope", str(error), {"WWW-Authenticate": header})
    except LatchUnavailable as error:
        logger.warning("cannot check a bearer token: %s", error)
        return Denial(503, "temporarily_unavailable", "the token cannot be checked now", {"Retry-After": "5"})
    return claims


def challenge(error: str, description: str, scope: Optional[str] = None) -> str:
    """A ``WWW-Authenticate: Bearer`` value; RFC 6750 §3 allows no ``"`` or ``\\`` in
    the quoted values, and only printable ASCII."""
    parts = [f'error="{error}"', f'error_description="{_quotable(description)}"']
    if scope:
        parts.append(f'scope="{_quotable(scope)}"')
    return "Bearer " + ", ".join(parts)


def _quotable(text: str) -> str:
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "'" if c == '"' else "?" for c in text)
