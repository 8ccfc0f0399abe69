"""Verifies Latch access tokens locally, against the issuer's published keys (JWKS).

The keys are cached; a token naming a key the cache does not hold triggers a refetch,
at most once per ``min_refetch_interval`` so that a flood of forged ``kid``s cannot make
this process hammer Latch. Each key verifies only with its own algorithm, so a token
cannot choose how it is checked (no ``alg: none``, no HS256 with a public key).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import jwt

from . import _http
from .claims import Claims
from .errors import ExpiredToken, InvalidToken, LatchUnavailable, UnknownKey

logger = logging.getLogger("latch_client")

SUPPORTED_ALGORITHMS = ("ES256", "EdDSA", "RS256")
"""What Latch signs with (``LATCH_SIGNING_ALGORITHM``)."""

REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
"""RFC 9068 §2.2: the claims every access token carries."""

_ACCEPTED_TYPES = ("at+jwt", "application/at+jwt")


@dataclass(frozen=True)
class _Key:
    """A published public key and the one algorithm it verifies."""

    algorithm: str
    key: Any


def _algorithm_of(jwk: Mapping[str, Any]) -> Optional[str]:
    """The JWK's ``alg``, or the algorithm its key type implies (Latch always sets
    ``alg``; other issuers may not)."""
    alg = jwk.get("alg")
    if isinstance(alg, str):
        return alg
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    if kty == "RSA":
        return "RS256"
    return None


class Verifier:
    """Verifies Latch access tokens and returns their :class:`Claims`.

    ``issuer`` is Latch's public URL (``LATCH_PUBLIC_URL``, e.g.
    ``https://auth.example.com``); ``audience`` defaults to it, as Latch's
    ``LATCH_TOKEN_AUDIENCE`` does, and may be a list (any one matches). Nothing is
    fetched until the first token is verified, so an app can be built before Latch
    is up. Thread-safe: share one instance per process.
    """

    def __init__(
        self,
        issuer: str,
        audience: Union[str, Sequence[str], None] = None,
        leeway: float = 5,
        *,
        jwks_uri: Optional[str] = None,
        algorithms: Iterable[str] = SUPPORTED_ALGORITHMS,
        required_claims: Iterable[str] = (),
        jwks_cache_ttl: float = 300,
        min_refetch_interval: float = 5,
        timeout: float = 10,
    ) -> None:
        self.issuer = _http.normalize_issuer(issuer)
        if audience is None:
            self.audience: tuple[str, ...] = (self.issuer,)
        elif isinstance(audience, str):
            self.audience = (audience,)
        else:
            self.audience = tuple(audience)
        self.leeway = leeway
        self.algorithms = tuple(algorithms)
        unknown = set(self.algorithms) - set(SUPPORTED_ALGORITHMS)
        if unknown:
            raise ValueError(f"unsupported algorithms {sorted(unknown)}; Latch signs with {SUPPORTED_ALGORITHMS}")
        self.required_claims = tuple(dict.fromkeys((*REQUIRED_CLAIMS, *required_claims)))
        self.jwks_cache_ttl = jwks_cache_ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout

        self._jwks_uri = jwks_uri
        self._discovery: Optional[Mapping[str, Any]] = None
        self._lock = threading.Lock()
        self._keys: Optional[dict[str, _Key]] = None
        self._fetched_at = 0.0
        self._last_attempt: Optional[float] = None
        self._last_error: Optional[LatchUnavailable] = None
        self.jwks_fetches = 0
        """How many times the JWKS was fetched (for metrics and tests)."""

    def discovery(self) -> Mapping[str, Any]:
        """The issuer's discovery document, fetched once and kept."""
        with self._lock:
            return self._discovery_locked()

    def _discovery_locked(self) -> Mapping[str, Any]:
        if self._discovery is None:
            self._discovery = _http.discover(self.issuer, self.timeout)
        return self._discovery

    def verify(self, token: str) -> Claims:
        """Verifies ``token`` (the bare JWT, without ``Bearer``).

        Raises :class:`InvalidToken` (or its subclasses :class:`ExpiredToken`,
        :class:`UnknownKey`) when the token is refused, and :class:`LatchUnavailable`
        when the keys cannot be fetched.
        """
        if not isinstance(token, str) or not token:
            raise InvalidToken("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from error

        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
            # RFC 9068 §4: keeps ID tokens and other JWTs from passing as access tokens.
            raise InvalidToken("not an access token (typ must be at+jwt)")
        if "crit" in header:
            # RFC 7515 §4.1.11: an extension we do not understand must not be ignored.
            raise InvalidToken("token has critical header parameters this verifier does not understand")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no kid")

        key = self._key(kid)
        if header.get("alg") != key.algorithm:
            raise InvalidToken(f"token alg {header.get('alg')!r} is not its key's {key.algorithm}")

        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=list(self.audience),
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(self.required_claims)},
            )
        except jwt.ExpiredSignatureError as error:
            raise ExpiredToken("token has expired") from error
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error) or type(error).__name__) from error

        iat = payload.get("iat")
        if isinstance(iat, (int, float)) and iat > time.time() + self.leeway:
            # Older PyJWT releases do not check this; Latch refuses such tokens too.
            raise InvalidToken("token is issued in the future")
        return Claims.from_payload(payload)

    def _key(self, kid: str) -> _Key:
        with self._lock:
            now = time.monotonic()
            stale = self._keys is None or now - self._fetched_at >= self.jwks_cache_ttl
            recently_tried = self._last_attempt is not None and now - self._last_attempt < self.min_refetch_interval
            if stale:
                if recently_tried and self._last_error is not None:
                    raise self._last_error
                self._refresh(now)
            elif self._keys is not None and kid not in self._keys and not recently_tried:
                logger.info("unknown kid %s: refetching the JWKS", kid)
                self._refresh(now)
            key = (self._keys or {}).get(kid)
        if key is None:
            raise UnknownKey(f"no published key has kid {kid!r}")
        return key

    def _refresh(self, now: float) -> None:
        self._last_attempt = now
        try:
            uri = self._jwks_uri
            if uri is None:
                found = self._discovery_locked().get("jwks_uri")
                if not isinstance(found, str):
                    raise LatchUnavailable(f"discovery at {self.issuer} has no jwks_uri")
                uri = found
            self.jwks_fetches += 1
            document = _http.get_json(uri, self.timeout)
            self._keys = self._parse_jwks(document)
        except LatchUnavailable as error:
            self._last_error = error
            raise
        self._fetched_at = now
        self._last_error = None

    def _parse_jwks(self, document: Mapping[str, Any]) -> dict[str, _Key]:
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise LatchUnavailable("JWKS has no keys array")
        keys: dict[str, _Key] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            algorithm = _algorithm_of(entry)
            if entry.get("use", "sig") != "sig" or algorithm not in self.algorithms:
                continue
            try:
                key = jwt.PyJWK(entry, algorithm).key
            except (jwt.PyJWTError, ValueError, TypeError) as error:
                # One key we cannot use must not hide the others.
                logger.warning("ignoring JWKS key %s: %s", entry["kid"], error)
                continue
            keys[entry["kid"]] = _Key(algorithm, key)
        return keys
