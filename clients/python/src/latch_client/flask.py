"""Flask integration: a decorator that verifies the request's Latch access token.

    latch = LatchFlask(issuer="https://auth.example.com")

    @app.get("/notes")
    @latch.require(scopes=["notes:read"])
    def notes():
        return {"user": current_claims().sub}

The claims are on ``flask.g.latch_claims`` (``current_claims()`` returns them typed).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar, Union, cast, overload

from flask import g, jsonify, request
from flask.typing import ResponseReturnValue

from . import _guard
from ._http import normalize_issuer
from .claims import Claims
from .introspection import Introspector
from .verifier import Verifier

__all__ = ["LatchFlask", "current_claims"]

F = TypeVar("F", bound=Callable[..., Any])


class LatchFlask:
    """Verifies Latch access tokens for Flask views.

    ``issuer``, ``audience`` and ``leeway`` configure a :class:`Verifier` (or pass your
    own as ``verifier``); ``client_id`` and ``client_secret`` (a Latch confidential
    client) enable ``introspect=True``.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: Union[str, Sequence[str], None] = None,
        leeway: float = 5,
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

    @overload
    def require(self, view: F) -> F: ...

    @overload
    def require(
        self,
        view: None = None,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        introspect: bool = False,
    ) -> Callable[[F], F]: ...

    def require(
        self,
        view: Optional[F] = None,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        introspect: bool = False,
    ) -> Union[F, Callable[[F], F]]:
        """Decorates a view so that it runs only for a valid token with ``scopes`` and
        ``roles``; works bare (``@latch.require``) or called.

        401 (``WWW-Authenticate: Bearer error="invalid_token"``) for a missing, invalid
        or expired token; 403 (``error="insufficient_scope"``) when a scope or role is
        missing; 503 when Latch's keys cannot be fetched. The body is
        ``{"error", "error_description"}``. With ``introspect=True`` Latch is asked
        about every request, so a logout or revocation is honoured at once.
        """
        required_scopes = tuple(scopes)
        required_roles = tuple(roles)
        if introspect and self.introspector is None:
            raise ValueError("introspect=True needs LatchFlask(client_id=..., client_secret=...)")

        def decorate(fn: F) -> F:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                token = _guard.bearer_token(request.headers.get("Authorization"))
                outcome = _guard.authorize(
                    self.verifier, self.introspector, token, required_scopes, required_roles, introspect
                )
                if isinstance(outcome, _guard.Denial):
                    return _denial_response(outcome)
                g.latch_claims = outcome
                return fn(*args, **kwargs)

            return cast(F, guarded)

        if view is not None:
            return decorate(view)
        return decorate


def current_claims() -> Claims:
    """The claims of the request's token, inside a view decorated with ``require``."""
    claims = g.get("latch_claims")
    if not isinstance(claims, Claims):
        raise RuntimeError("no Latch claims on this request: decorate the view with LatchFlask.require")
    return claims


def _denial_response(denial: _guard.Denial) -> ResponseReturnValue:
    response = jsonify(denial.body())
    response.status_code = denial.status
    response.headers.update(denial.headers)
    response.headers["Cache-Control"] = "no-store"
    return response
