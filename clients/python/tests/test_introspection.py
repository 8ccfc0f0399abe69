"""Introspector against Latch's /introspect, as a confidential client created with
`latch client create --confidential --json`."""

from __future__ import annotations

import time
from typing import Dict

import pytest

from latch_client import InactiveToken, Introspection, IntrospectionError, Introspector, LatchUnavailable

from .conftest import LatchServer, User


def test_active_token_then_inactive_after_logout(
    latch: LatchServer, user: User, confidential_client: Dict[str, str]
) -> None:
    introspector = Introspector(latch.url, confidential_client["client_id"], confidential_client["client_secret"])
    response = latch.token_response(user)
    token = response["access_token"]

    result = introspector.introspect(token)

    assert isinstance(result, Introspection)
    assert result.active is True
    assert result.sub == user.id
    assert result.username == user.username
    assert result.client_id == "latch"
    assert result.iss == latch.url
    assert result.aud == (latch.url,)
    assert result.sid
    assert result.scope == ("openid", "profile", "email")
    assert result.exp is not None and result.iat is not None
    assert result.exp - result.iat == response["expires_in"]
    assert abs(result.iat - time.time()) < 60
    assert introspector.require_active(token).sub == user.id

    latch.logout(token)

    after = introspector.introspect(token)
    assert after.active is False
    assert after.sub is None and after.scope == ()
    with pytest.raises(InactiveToken):
        introspector.require_active(token)


def test_refresh_tokens_and_revocation(latch: LatchServer, user: User, confidential_client: Dict[str, str]) -> None:
    introspector = Introspector(
        latch.url,
        confidential_client["client_id"],
        confidential_client["client_secret"],
        auth_method="client_secret_post",
    )
    response = latch.token_response(user)

    refresh = introspector.introspect(response["refresh_token"], token_type_hint="refresh_token")
    assert refresh.active and refresh.sub == user.id

    revoked = latch.http.post("/revoke", data={"token": response["refresh_token"]})
    assert revoked.status_code == 200, revoked.text

    assert not introspector.introspect(response["refresh_token"]).active
    assert not introspector.introspect(response["access_token"]).active, "revoking a token ends its session"


def test_garbage_is_inactive(latch: LatchServer, confidential_client: Dict[str, str]) -> None:
    introspector = Introspector(latch.url, confidential_client["client_id"], confidential_client["client_secret"])

    assert introspector.introspect("not-a-token") == Introspection(active=False)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_wrong_client_secret_is_an_introspection_error(
    latch: LatchServer, user: User, confidential_client: Dict[str, str], auth_method: str
) -> None:
    introspector = Introspector(latch.url, confidential_client["client_id"], "wrong", auth_method=auth_method)

    with pytest.raises(IntrospectionError, match="401"):
        introspector.introspect(latch.token(user))


def test_endpoint_comes_from_discovery(latch: LatchServer) -> None:
    introspector = Introspector(latch.url + "/", "id", "secret")

    assert introspector.endpoint() == latch.url + "/introspect"
    assert "secret" not in repr(introspector)


def test_unreachable_endpoint_is_unavailable() -> None:
    introspector = Introspector("http://127.0.0.1:1", "id", "secret", endpoint="http://127.0.0.1:1/introspect", timeout=2)

    with pytest.raises(LatchUnavailable):
        introspector.introspect("token")
