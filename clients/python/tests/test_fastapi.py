"""LatchFastAPI in a FastAPI app driven by TestClient, with real Latch tokens verified
against the real server's keys."""

from __future__ import annotations

import base64
import time
from typing import Any, Callable, Dict

import pytest
from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient

from latch_client import Claims, Verifier
from latch_client.fastapi import LatchFastAPI

from .conftest import JwksServer, LatchServer, User

API_ORIGIN = "http://testserver"  # TestClient's base URL: the API's origin


def make_app(auth: LatchFastAPI, introspection: bool = False) -> FastAPI:
    app = FastAPI()

    def view(claims: Claims) -> Dict[str, Any]:
        return {"sub": claims.sub, "scope": list(claims.scope), "roles": list(claims.roles)}

    @app.get("/me")
    def me(claims: Claims = Depends(auth.user())) -> Dict[str, Any]:
        return view(claims)

    @app.get("/email")
    async def email(claims: Claims = Depends(auth.user(scopes=["email"]))) -> Dict[str, Any]:
        return view(claims)

    @app.get("/write")
    def write(claims: Claims = Depends(auth.user(scopes=["notes:write"]))) -> Dict[str, Any]:
        return view(claims)

    @app.get("/write-security")
    def write_security(claims: Claims = Security(auth.user(), scopes=["notes:write"])) -> Dict[str, Any]:
        return view(claims)

    @app.get("/admin")
    def admin(claims: Claims = Depends(auth.user(roles=["admin"]))) -> Dict[str, Any]:
        return view(claims)

    if introspection:

        @app.get("/strict")
        def strict(claims: Claims = Depends(auth.user(introspect=True))) -> Dict[str, Any]:
            return view(claims)

    return app


@pytest.fixture
def client(latch: LatchServer) -> TestClient:
    return TestClient(make_app(LatchFastAPI(issuer=latch.url)))


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_params(header: str) -> Dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    params = {}
    for part in rest.split('", '):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return params


def test_a_valid_token_gets_200(client: TestClient, latch: LatchServer, user: User) -> None:
    response = client.get("/me", headers=bearer(latch.token(user)))

    assert response.status_code == 200, response.text
    assert response.json()["sub"] == user.id


def test_no_token_gets_401_with_a_bare_challenge(client: TestClient) -> None:
    for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]:
        response = client.get("/me", headers=headers)

        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer", "RFC 6750 §3.1: no error code without a token"
        assert response.json() == {"detail": "a bearer token is required"}


def test_an_invalid_token_gets_401_invalid_token(client: TestClient, latch: LatchServer, user: User) -> None:
    token = latch.token(user)
    for bad in ["garbage", token[:-4] + "AAAA"]:
        response = client.get("/me", headers=bearer(bad))

        assert response.status_code == 401
        params = challenge_params(response.headers["WWW-Authenticate"])
        assert params["error"] == "invalid_token"
        assert params["error_description"]


def test_an_expired_token_gets_401_invalid_token(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    now = int(time.time())
    client = TestClient(make_app(LatchFastAPI(issuer=jwks_server.url, verifier=Verifier(jwks_server.url))))

    assert client.get("/me", headers=bearer(jwks_server.sign(kid))).status_code == 200
    response = client.get("/me", headers=bearer(jwks_server.sign(kid, exp=now - 60, iat=now - 120)))

    assert response.status_code == 401
    assert challenge_params(response.headers["WWW-Authenticate"]) == {
        "error": "invalid_token",
        "error_description": "token has expired",
    }


def test_granted_scope_gets_200(client: TestClient, latch: LatchServer, user: User) -> None:
    response = client.get("/email", headers=bearer(latch.token(user)))

    assert response.status_code == 200, response.text
    assert "email" in response.json()["scope"]


@pytest.mark.parametrize("path", ["/write", "/write-security"])
def test_missing_scope_gets_403_insufficient_scope(client: TestClient, latch: LatchServer, user: User, path: str) -> None:
    response = client.get(path, headers=bearer(latch.token(user)))

    assert response.status_code == 403
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "notes:write"
    assert response.json() == {"detail": "missing scopes: notes:write"}


def test_missing_role_gets_403(client: TestClient, latch: LatchServer, user: User) -> None:
    response = client.get("/admin", headers=bearer(latch.token(user)))

    assert response.status_code == 403
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert "scope" not in params
    assert response.json() == {"detail": "missing roles: admin"}


def test_role_in_the_token_gets_200(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    client = TestClient(make_app(LatchFastAPI(issuer=jwks_server.url, verifier=Verifier(jwks_server.url))))

    response = client.get("/admin", headers=bearer(jwks_server.sign(kid, roles=["admin"])))

    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["admin"]


def test_unreachable_latch_gets_503(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    token = jwks_server.sign(kid)
    client = TestClient(make_app(LatchFastAPI(issuer=jwks_server.url)))
    jwks_server.stop()

    response = client.get("/me", headers=bearer(token))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_openapi_describes_latch_password_flow(latch: LatchServer) -> None:
    schema = make_app(LatchFastAPI(issuer=latch.url)).openapi()

    schemes = schema["components"]["securitySchemes"]
    assert schemes == {
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            "flows": {
                "password": {
                    "scopes": {"openid": "your user id", "profile": "your username", "email": "your email address"},
                    "tokenUrl": latch.url + "/token",
                }
            },
        }
    }
    assert schema["paths"]["/write"]["get"]["security"] == [{"OAuth2PasswordBearer": ["notes:write"]}]
    assert schema["paths"]["/write-security"]["get"]["security"] == [{"OAuth2PasswordBearer": ["notes:write"]}]
    assert schema["paths"]["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]


@pytest.mark.parametrize(
    ("scope", "client_id"),
    [("", ""), ("openid profile email", ""), ("openid email", "api-docs")],
    ids=["nothing-ticked", "scopes-ticked", "client-id-filled"],
)
def test_swagger_ui_authorize_against_latch(
    start_latch: Callable[..., LatchServer], scope: str, client_id: str
) -> None:
    """What Swagger UI's "Authorize" dialog sends for the password flow, from the API's
    origin to Latch's /token: a CORS preflight, then the form with the client
    credentials in a Basic header (its default "Authorization header" location, empty
    when the user leaves client_id and client_secret blank)."""
    server = start_latch(LATCH_CORS_ORIGINS=API_ORIGIN)
    account = server.register()
    api = make_app(LatchFastAPI(issuer=server.url))
    token_url = api.openapi()["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"]
    app = TestClient(api)

    preflight = server.http.options(
        token_url,
        headers={
            "Origin": API_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code in (200, 204), preflight.text
    assert preflight.headers.get("Access-Control-Allow-Origin") == API_ORIGIN
    allowed_headers = preflight.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "authorization" in allowed_headers or allowed_headers == "*", preflight.headers

    basic = base64.b64encode(f"{client_id}:".encode()).decode()
    response = server.http.post(
        token_url,
        data={"grant_type": "password", "scope": scope, "username": account.username, "password": account.password},
        headers={"Origin": API_ORIGIN, "Authorization": f"Basic {basic}", "Accept": "application/json, text/plain, */*"},
    )
    assert response.status_code == 200, response.text
    assert response.headers.get("Access-Control-Allow-Origin") == API_ORIGIN
    body = response.json()
    assert body["token_type"].lower() == "bearer"

    # Swagger UI then sends the token as a bearer header on "Try it out".
    me = app.get("/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == account.id
    if scope:
        assert me.json()["scope"] == scope.split()


def test_introspection_honours_a_logout_at_once(
    latch: LatchServer, user: User, confidential_client: Dict[str, str]
) -> None:
    auth = LatchFastAPI(
        issuer=latch.url,
        client_id=confidential_client["client_id"],
        client_secret=confidential_client["client_secret"],
    )
    client = TestClient(make_app(auth, introspection=True))
    token = latch.token(user)
    assert client.get("/strict", headers=bearer(token)).status_code == 200

    latch.logout(token)

    response = client.get("/strict", headers=bearer(token))
    assert response.status_code == 401
    assert challenge_params(response.headers["WWW-Authenticate"])["error"] == "invalid_token"
    # Without introspection the token passes until its exp (SPEC §3): why /strict exists.
    assert client.get("/me", headers=bearer(token)).status_code == 200


def test_introspect_without_client_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="client_id"):
        LatchFastAPI(issuer="http://127.0.0.1:1").user(introspect=True)
