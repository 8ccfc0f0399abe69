"""FastAPI integration: a dependency that verifies the request's Latch access token.

    latch = LatchFastAPI(issuer="https://auth.example.com")

    @app.get("/notes")
    def notes(claims: Claims = Depends(latch.user(scopes=["notes:read"]))) -> ...: ...

The bearer scheme is FastAPI's own ``OAuth2PasswordBearer`` pointed at Latch's
``/token``, so the OpenAPI document describes it and Swagger UI's "Authorize" button
signs in against Latch (which must allow the docs' origin: ``LATCH_CORS_ORIGINS``).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

from fastapi import HTTPException, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from . import _guard
from ._http import normalize_issuer
from .claims import Claims
from .introspection import Introspector
from .verifier import Verifier

__all__ = ["LatchFastAPI"]

DEFAULT_SCOPES: Mapping[str, str] = {
    "openid": "your user id",
    "profile": "your username",
    "email": "your email address",
}
"""Scopes shown in Swagger UI's "Authorize" dialog unless others are given."""


class LatchFastAPI:
    """Verifies Latch access tokens for a FastAPI app.

    ``issuer``, ``audience`` and ``leeway`` configure a :class:`Verifier` (or pass your
    own as ``verifier``). ``token_url`` defaults to ``<issuer>/token``; ``scopes`` are
    the descriptions Swagger UI lists. ``client_id`` and ``client_secret`` (a Latch
    confidential client) enable ``introspect=True``.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: Union[str, Sequence[str], None] = None,
        leeway: float = 5,
        token_url: Optional[str] = None,
        scopes: Optional[Mapping[str, str]] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        verifier: Optional[Verifier] = None,
        introspector: Optional[Introspector] = None,
    ) -> None:
        issuer = normalize_issuer(issuer)
        self.verifier = verifier or Verifier(issuer, audience, leeway)
        if introspector is None and client_id is not None and client_secret is not None:
            introspector = Introspector(issuer, client_id, client_secret)
        self.introspector = introspector
        # auto_error=False: a missing token gets our RFC 6750 answer, not FastAPI's.
        self.scheme = OAuth2PasswordBearer(
            tokenUrl=token_url or issuer + "/token",
            scopes=dict(DEFAULT_SCOPES if scopes is None else scopes),
            auto_error=False,
        )

    def user(
        self,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        *,
        introspect: bool = False,
    ) -> Callable[..., Claims]:
        """A dependency returning the caller's :class:`Claims`.

        401 (``WWW-Authenticate: Bearer error="invalid_token"``) for a missing, invalid
        or expired token; 403 (``error="insufficient_scope"``) when a scope or role is
        missing; 503 when Latch's keys cannot be fetched. Scopes given through
        ``Security(latch.user(), scopes=[...])`` are required as well. With
        ``introspect=True`` Latch is asked about every request, so a logout or
        revocation is honoured at once.
        """
        required_scopes = list(dict.fromkeys(scopes))
        required_roles = tuple(roles)
        if introspect and self.introspector is None:
            raise ValueError("introspect=True needs LatchFastAPI(client_id=..., client_secret=...)")
        scheme = self.scheme

        def latch_user(
            security_scopes: SecurityScopes,
            token: Optional[str] = Security(scheme, scopes=required_scopes),
        ) -> Claims:
            wanted = [*required_scopes, *security_scopes.scopes]
            outcome = _guard.authorize(self.verifier, self.introspector, token, wanted, required_roles, introspect)
            if isinstance(outcome, _guard.Denial):
                raise HTTPException(outcome.status, detail=outcome.description, headers=dict(outcome.headers))
            return outcome

        return latch_user
