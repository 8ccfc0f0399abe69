"""Verify Latch access tokens in Python services.

``Verifier`` checks tokens locally against Latch's published keys (JWKS);
``Introspector`` asks Latch whether a token is still active (RFC 7662). Framework
integrations live in ``latch_client.fastapi`` (``LatchFastAPI``) and
``latch_client.flask`` (``LatchFlask``), installed with the ``fastapi`` and ``flask``
extras.
"""

from .claims import Claims
from .errors import (
    ExpiredToken,
    InactiveToken,
    InsufficientScope,
    IntrospectionError,
    InvalidToken,
    LatchError,
    LatchUnavailable,
    UnknownKey,
)
from .introspection import Introspection, Introspector
from .verifier import REQUIRED_CLAIMS, SUPPORTED_ALGORITHMS, Verifier

__all__ = [
    "REQUIRED_CLAIMS",
    "SUPPORTED_ALGORITHMS",
    "Claims",
    "ExpiredToken",
    "InactiveToken",
    "InsufficientScope",
    "Introspection",
    "IntrospectionError",
    "Introspector",
    "InvalidToken",
    "LatchError",
    "LatchUnavailable",
    "UnknownKey",
    "Verifier",
]

__version__ = "0.1.0"
