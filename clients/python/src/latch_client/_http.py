"""The few HTTP requests latch_client makes (discovery, JWKS, introspection), with the
standard library only, so that the core package depends on nothing but PyJWT."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping, Optional

from .errors import LatchUnavailable

USER_AGENT = "latch-client-python/0.1"


def _read_json(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    """Sends `request`; returns the status and the decoded JSON body of any answer
    that has one, error statuses included (introspection's 401 is an answer)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) URLs from config
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
        if status >= 500:
            raise LatchUnavailable(f"{request.full_url} answered {status}") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise LatchUnavailable(f"cannot reach {request.full_url}: {error}") from error
    try:
        return status, json.loads(body)
    except ValueError as error:
        raise LatchUnavailable(f"{request.full_url} answered {status} without JSON") from error


def get_json(url: str, timeout: float) -> Mapping[str, Any]:
    """GETs a JSON object; anything but a 200 with an object is LatchUnavailable."""
    _check_scheme(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    status, body = _read_json(request, timeout)
    if status != 200 or not isinstance(body, dict):
        raise LatchUnavailable(f"{url} answered {status}, not a JSON object")
    return body


def post_form(
    url: str, form: Mapping[str, str], headers: Optional[Mapping[str, str]], timeout: float
) -> tuple[int, Any]:
    """POSTs an urlencoded form; returns the status and JSON body, whatever the status
    below 500."""
    _check_scheme(url)
    data = urllib.parse.urlencode(form).encode()
    all_headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": USER_AGENT,
        **(headers or {}),
    }
    request = urllib.request.Request(url, data=data, headers=all_headers, method="POST")
    return _read_json(request, timeout)


def _check_scheme(url: str) -> None:
    # urllib would also open file: and ftp: URLs; a discovery document must not steer
    # us there.
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise LatchUnavailable(f"not an http(s) URL: {url!r}")


def discover(issuer: str, timeout: float) -> Mapping[str, Any]:
    """Reads the issuer's OpenID discovery document and checks that it names the same
    issuer (OpenID Connect Discovery §4.3), so a misconfigured URL fails loudly."""
    document = get_json(issuer + "/.well-known/openid-configuration", timeout)
    if document.get("issuer") != issuer:
        raise LatchUnavailable(
            f"discovery at {issuer} names issuer {document.get('issuer')!r}: "
            "configure the issuer exactly as Latch's LATCH_PUBLIC_URL"
        )
    return document


def normalize_issuer(issuer: str) -> str:
    """Latch drops a trailing slash from its public URL; so do we, so both spellings work."""
    return issuer.rstrip("/")
