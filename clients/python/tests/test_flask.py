"""LatchFlask in a Flask app driven by its test client, with real Latch tokens verified
against the real server's keys."""

from __future__ import annotations

import time
from typing import Any, Dict

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from latch_client import Verifier
from latch_client.flask import LatchFlask, current_claims

from .conftest import JwksServer, LatchServer, User
from .test_fastapi import bearer, challenge_params


def make_app(latch: LatchFlask, introspection: bool = False) -> Flask:
    app = Flask(__name__)

    def view() -> Dict[str, Any]:
        claims = current_claims()
        assert g.latch_claims is claims
        return {"sub": claims.sub, "scope": list(claims.scope), "roles": list(claims.roles)}

    @app.get("/me")
    @latch.require
    def me() -> Dict[str, Any]:
        return view()

    @app.get("/email")
    @latch.require(scopes=["email"])
    def email() -> Dict[str, Any]:
        return view()

    @app.get("/write")
    @latch.require(scopes=["notes:write"])
    def write() -> Dict[str, Any]:
        return view()

    @app.get("/admin")
    @latch.require(roles=["admin"])
    def admin() -> Dict[str, Any]:
        return view()

    @app.get("/items/<int:item>")
    @latch.require()
    def item(item: int) -> Dict[str, Any]:
        return {"item": item, "sub": current_claims().sub}

    if introspection:

        @app.get("/strict")
        @latch.require(introspect=True)
        def strict() -> Dict[str, Any]:
            return view()

    return app


@pytest.fixture
def client(latch: LatchServer) -> FlaskClient:
    return make_app(LatchFlask(issuer=latch.url)).test_client()


def test_a_valid_token_gets_200(client: FlaskClient, latch: LatchServer, user: User) -> None:
    token = latch.token(user)

    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["sub"] == user.id

    response = client.get("/items/7", headers={"Authorization": f"bearer  {token} "})
    assert response.status_code == 200
    assert response.get_json() == {"item": 7, "sub": user.id}


def test_no_token_gets_401_with_a_bare_challenge(client: FlaskClient) -> None:
    for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}]:
        response = client.get("/me", headers=headers)

        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json() == {"error": "unauthorized", "error_description": "a bearer token is required"}
        assert response.headers["Cache-Control"] == "no-store"


def test_an_invalid_token_gets_401_invalid_token(client: FlaskClient, latch: LatchServer, user: User) -> None:
    token = latch.token(user)
    for bad in ["garbage", token[:-4] + "AAAA"]:
        response = client.get("/me", headers=bearer(bad))

        assert response.status_code == 401
        assert challenge_params(response.headers["WWW-Authenticate"])["error"] == "invalid_token"
        assert response.get_json()["error"] == "invalid_token"


def test_an_expired_token_gets_401(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    now = int(time.time())
    client = make_app(LatchFlask(issuer=jwks_server.url, verifier=Verifier(jwks_server.url))).test_client()

    response = client.get("/me", headers=bearer(jwks_server.sign(kid, exp=now - 60, iat=now - 120)))

    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid_token", "error_description": "token has expired"}


def test_granted_scope_gets_200(client: FlaskClient, latch: LatchServer, user: User) -> None:
    response = client.get("/email", headers=bearer(latch.token(user)))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "email" in response.get_json()["scope"]


def test_missing_scope_gets_403_insufficient_scope(client: FlaskClient, latch: LatchServer, user: User) -> None:
    response = client.get("/write", headers=bearer(latch.token(user)))

    assert response.status_code == 403
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "notes:write"
    assert response.get_json() == {"error": "insufficient_scope", "error_description": "missing scopes: notes:write"}


def test_roles(client: FlaskClient, latch: LatchServer, user: User, jwks_server: JwksServer) -> None:
    response = client.get("/admin", headers=bearer(latch.token(user)))
    assert response.status_code == 403
    assert response.get_json()["error_description"] == "missing roles: admin"

    kid = jwks_server.add_key()
    own = make_app(LatchFlask(issuer=jwks_server.url)).test_client()
    response = own.get("/admin", headers=bearer(jwks_server.sign(kid, roles=["admin"])))
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["admin"]


def test_unreachable_latch_gets_503(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    token = jwks_server.sign(kid)
    client = make_app(LatchFlask(issuer=jwks_server.url)).test_client()
    jwks_server.stop()

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"


def test_introspection_honours_a_logout_at_once(
    latch: LatchServer, user: User, confidential_client: Dict[str, str]
) -> None:
    guard = LatchFlask(
        issuer=latch.url,
        client_id=confidential_client["client_id"],
        client_secret=confidential_client["client_secret"],
    )
    client = make_app(guard, introspection=True).test_client()
    token = latch.token(user)
    assert client.get("/strict", headers=bearer(token)).status_code == 200

    latch.logout(token)

    response = client.get("/strict", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert client.get("/me", headers=bearer(token)).status_code == 200


def test_current_claims_outside_a_guarded_view_is_an_error() -> None:
    app = Flask(__name__)
    with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="require"):
            current_claims()
