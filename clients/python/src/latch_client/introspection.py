"""Asks Latch whether a token is still good (RFC 7662 token introspection).

Local verification accepts an access token until its ``exp``, even after the user
logged out; introspection is how a service honours a logout or revocation at once, at
the cost of one request to Latch per check. The caller authenticates as a registered
confidential client (``latch client create --confidential``).
"""

from __future__ import annotations

import base64
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from . import _http
from .errors import InactiveToken, IntrospectionError, LatchUnavailable


@dataclass(frozen=True)
class Introspection:
    """Latch's answer about one token. When ``active`` is false every other field is
    empty: RFC 7662 says nothing more about an inactive token."""

    active: bool
    sub: Optional[str] = None
    sid: Optional[str] = None
    client_id: Optional[str] = None
    username: Optional[str] = None
    token_type: Optional[str] = None
    scope: tuple[str, ...] = ()
    exp: Optional[int] = None
    iat: Optional[int] = None
    iss: Optional[str] = None
    aud: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> Introspection:
        if body.get("active") is not True:
            return cls(active=False, raw=dict(body))

        def text(name: str) -> Optional[str]:
            value = body.get(name)
            return value if isinstance(value, str) else None

        def number(name: str) -> Optional[int]:
            value = body.get(name)
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        aud = body.get("aud")
        if isinstance(aud, str):
            audiences: tuple[str, ...] = (aud,)
        elif isinstance(aud, list):
            audiences = tuple(a for a in aud if isinstance(a, str))
        else:
            audiences = ()
        return cls(
            active=True,
            sub=text("sub"),
            sid=text("sid"),
            client_id=text("client_id"),
            username=text("username"),
            token_type=text("token_type"),
            scope=tuple((text("scope") or "").split()),
            exp=number("exp"),
            iat=number("iat"),
            iss=text("iss"),
            aud=audiences,
            raw=dict(body),
        )


class Introspector:
    """Introspects tokens at Latch's ``/introspect`` as a confidential client.

    ``issuer`` is Latch's public URL; the endpoint is read from its discovery document
    (``introspection_endpoint``) unless ``endpoint`` is given. ``auth_method`` is
    ``client_secret_basic`` (default) or ``client_secret_post``. Thread-safe.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        endpoint: Optional[str] = None,
        auth_method: str = "client_secret_basic",
        timeout: float = 10,
    ) -> None:
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError("auth_method must be client_secret_basic or client_secret_post")
        self.issuer = _http.normalize_issuer(issuer)
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method = auth_method
        self.timeout = timeout
        self._endpoint = endpoint
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Introspector(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def endpoint(self) -> str:
        """The introspection endpoint, from discovery on first use."""
        with self._lock:
            if self._endpoint is None:
                found = _http.discover(self.issuer, self.timeout).get("introspection_endpoint")
                if not isinstance(found, str):
                    raise LatchUnavailable(f"discovery at {self.issuer} has no introspection_endpoint")
                self._endpoint = found
            return self._endpoint

    def introspect(self, token: str, token_type_hint: Optional[str] = None) -> Introspection:
        """Latch's answer about ``token`` (an access or a refresh token).

        Raises :class:`IntrospectionError` when Latch refuses this client's credentials
        and :class:`LatchUnavailable` when it cannot be reached.
        """
        form = {"token": token}
        if token_type_hint is not None:
            form["token_type_hint"] = token_type_hint
        headers: dict[str, str] = {}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
            pair = f"{_form_encode(self.client_id)}:{_form_encode(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        status, body = _http.post_form(self.endpoint(), form, headers, self.timeout)
        if status in (400, 401, 403):
            error = body.get("error") if isinstance(body, dict) else None
            raise IntrospectionError(
                f"Latch refused the introspection request: {status} {error or 'error'}; check the client id and secret"
            )
        if status != 200 or not isinstance(body, dict):
            raise LatchUnavailable(f"introspection answered {status}")
        return Introspection.from_response(body)

    def require_active(self, token: str) -> Introspection:
        """Like :meth:`introspect`, but raises :class:`InactiveToken` for an inactive token."""
        result = self.introspect(token, "access_token")
        if not result.active:
            raise InactiveToken("token is no longer active (logged out, revoked or expired)")
        return result


def _form_encode(value: str) -> str:
    return urllib.parse.quote(value, safe="")
