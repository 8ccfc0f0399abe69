"""The claims of a verified Latch access token, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from .errors import InsufficientScope, InvalidToken


@dataclass(frozen=True)
class Claims:
    """A verified access token's claims (RFC 9068 profile, as Latch signs them).

    ``scope`` and ``roles`` are tuples in the token's order; ``"email" in claims.scope``
    works as expected. ``raw`` holds every claim as decoded, including any this class
    does not name.
    """

    sub: str
    """The user's id (or the client's, for a ``client_credentials`` token)."""
    iss: str
    aud: tuple[str, ...]
    exp: int
    iat: int
    jti: str
    client_id: str
    sid: Optional[str] = None
    """The session id: what a logout ends. Absent on tokens without a user session."""
    scope: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Claims:
        """Types a decoded payload; refuses claims of the wrong JSON type."""

        def string(name: str) -> str:
            value = payload.get(name)
            if not isinstance(value, str):
                raise InvalidToken(f"claim {name} must be a string")
            return value

        def integer(name: str) -> int:
            value = payload.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidToken(f"claim {name} must be a number")
            return int(value)

        aud = payload.get("aud")
        if isinstance(aud, str):
            audiences: tuple[str, ...] = (aud,)
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            audiences = tuple(aud)
        else:
            raise InvalidToken("claim aud must be a string or an array of strings")

        scope = payload.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("claim scope must be a space-separated string")
        roles = payload.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("claim roles must be an array of strings")
        sid = payload.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise InvalidToken("claim sid must be a string")

        return cls(
            sub=string("sub"),
            iss=string("iss"),
            aud=audiences,
            exp=integer("exp"),
            iat=integer("iat"),
            jti=string("jti"),
            client_id=string("client_id"),
            sid=sid,
            scope=tuple(scope.split()),
            roles=tuple(roles),
            raw=dict(payload),
        )

    def has_scopes(self, *scopes: str) -> bool:
        """Whether every one of ``scopes`` was granted."""
        return set(scopes) <= set(self.scope)

    def has_roles(self, *roles: str) -> bool:
        """Whether the user has every one of ``roles``."""
        return set(roles) <= set(self.roles)

    def require(self, scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> None:
        """Raises :class:`InsufficientScope` naming what is missing, if anything is."""
        missing_scopes = [s for s in dict.fromkeys(scopes) if s not in self.scope]
        missing_roles = [r for r in dict.fromkeys(roles) if r not in self.roles]
        if missing_scopes or missing_roles:
            raise InsufficientScope(missing_scopes, missing_roles)
