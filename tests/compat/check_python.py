"""Latch against the Python OAuth/JOSE ecosystem, each library with its default settings.

Verifiers (PyJWT, python-jose, joserfc, authlib's RFC 9068 validator) must accept a
default Latch access token and refuse a forged one or one meant for another audience;
OAuth clients (authlib's and requests-oauthlib's OAuth2Session) must run the password
grant, refresh and revocation unmodified; a browser's CORS preflight must get the
answers SPEC §6 promises.

Environment: LATCH_URL (a running Latch), LATCH_USER and LATCH_PASSWORD (a registered
user), LATCH_CORS_ORIGIN (an origin in LATCH_CORS_ORIGINS) and LATCH_CLIENT_ID with
LATCH_CLIENT_SECRET (a confidential client). A check whose variables are missing is a
SKIP, which fails the run too: the harness always sets them.

Reports one row per check, `library | check | PASS`, `FAIL (reason)` or `SKIP (reason)`:
on stderr as it is known, and as one table on stdout at the end (which
tests/api/ecosystem.rs reads). Exits 1 unless every check passed.
"""

import base64
import json
import os

import requests
from harness import Skip, check, expect, label, main

URL = os.environ["LATCH_URL"].rstrip("/")
USER = os.environ["LATCH_USER"]
PASSWORD = os.environ["LATCH_PASSWORD"]
CORS_ORIGIN = os.environ.get("LATCH_CORS_ORIGIN")
CLIENT_ID = os.environ.get("LATCH_CLIENT_ID")
CLIENT_SECRET = os.environ.get("LATCH_CLIENT_SECRET")
TIMEOUT = 10

# oauthlib (under requests-oauthlib) refuses plain http unless told that this is a
# development setup; the test server listens on 127.0.0.1 without TLS.
if URL.startswith("http://"):
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

def expect_refused(fn, what):
    """`fn` must raise: a verifier that accepts `what` is broken."""
    try:
        fn()
    except Exception:  # noqa: BLE001 - any refusal will do
        return
    raise AssertionError(f"accepted {what}")


def password_grant(**extra):
    response = requests.post(
        f"{URL}/token",
        data={"grant_type": "password", "username": USER, "password": PASSWORD, **extra},
        timeout=TIMEOUT,
    )
    expect(response.status_code == 200, f"/token answered {response.status_code}: {response.text}")
    return response.json()


def forged(token):
    """The token with its payload changed (another `sub`) and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "00000000-0000-0000-0000-000000000000"
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


DISCOVERY = requests.get(f"{URL}/.well-known/openid-configuration", timeout=TIMEOUT).json()
ISSUER = DISCOVERY["issuer"]
JWKS_URI = DISCOVERY["jwks_uri"]
TOKEN_ENDPOINT = DISCOVERY["token_endpoint"]
REVOCATION_ENDPOINT = DISCOVERY["revocation_endpoint"]
# Latch's default audience is its public URL, which is also the issuer.
AUDIENCE = os.environ.get("LATCH_AUDIENCE", ISSUER)
OTHER_AUDIENCE = "https://another-api.example"
TOKEN = password_grant()["access_token"]


# ---------------------------------------------------------------------------------
# Verifiers


@check(label("PyJWT"), "PyJWKClient + jwt.decode (iss, aud)")
def _():
    import jwt

    signing_key = jwt.PyJWKClient(JWKS_URI).get_signing_key_from_jwt(TOKEN)
    claims = jwt.decode(TOKEN, signing_key, algorithms=[signing_key.algorithm_name], audience=AUDIENCE, issuer=ISSUER)
    expect(claims["iss"] == ISSUER and claims["sub"], f"claims {claims}")


@check(label("PyJWT"), "refuses forged token and other audience")
def _():
    import jwt

    signing_key = jwt.PyJWKClient(JWKS_URI).get_signing_key_from_jwt(TOKEN)
    algorithms = [signing_key.algorithm_name]
    expect_refused(
        lambda: jwt.decode(forged(TOKEN), signing_key, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER),
        "a forged token",
    )
    expect_refused(
        lambda: jwt.decode(TOKEN, signing_key, algorithms=algorithms, audience=OTHER_AUDIENCE, issuer=ISSUER),
        "another audience",
    )


def jwks():
    return requests.get(JWKS_URI, timeout=TIMEOUT).json()


@check(label("python-jose"), "jwt.decode with the JWKS (iss, aud)")
def _():
    from jose import jwt

    keys = jwks()
    algorithms = sorted({k["alg"] for k in keys["keys"]})
    claims = jwt.decode(TOKEN, keys, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER)
    expect(claims["iss"] == ISSUER and claims["sub"], f"claims {claims}")


@check(label("python-jose"), "refuses forged token and other audience")
def _():
    from jose import jwt

    keys = jwks()
    algorithms = sorted({k["alg"] for k in keys["keys"]})
    expect_refused(
        lambda: jwt.decode(forged(TOKEN), keys, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER),
        "a forged token",
    )
    expect_refused(
        lambda: jwt.decode(TOKEN, keys, algorithms=algorithms, audience=OTHER_AUDIENCE, issuer=ISSUER),
        "another audience",
    )


def joserfc_registry(audience):
    from joserfc import jwt

    return jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": audience},
        sub={"essential": True},
        exp={"essential": True},
    )


@check(label("joserfc"), "jwt.decode + JWTClaimsRegistry")
def _():
    from joserfc import jwt
    from joserfc.jwk import KeySet

    token = jwt.decode(TOKEN, KeySet.import_key_set(jwks()))
    joserfc_registry(AUDIENCE).validate(token.claims)
    expect(token.header.get("typ") == "at+jwt", f"header {token.header}")


@check(label("joserfc"), "refuses forged token and other audience")
def _():
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(jwks())
    expect_refused(lambda: jwt.decode(forged(TOKEN), keys), "a forged token")
    token = jwt.decode(TOKEN, keys)
    expect_refused(lambda: joserfc_registry(OTHER_AUDIENCE).validate(token.claims), "another audience")


def rfc9068_validator(resource_server):
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator

    class LatchValidator(JWTBearerTokenValidator):
        """The one method the validator leaves to the resource server."""

        def get_jwks(self):
            return jwks()

    return LatchValidator(issuer=ISSUER, resource_server=resource_server)


@check(label("authlib", "authlib RFC 9068"), "JWTBearerTokenValidator authenticate + validate")
def _():
    validator = rfc9068_validator(AUDIENCE)
    claims = validator.authenticate_token(TOKEN)
    validator.validate_token(claims, scopes=["profile"], request=None)
    expect(claims["sub"] and claims["client_id"], f"claims {dict(claims)}")


@check(label("authlib", "authlib RFC 9068"), "refuses forged, other audience, missing scope")
def _():
    from authlib.oauth2.rfc6750.errors import InsufficientScopeError

    validator = rfc9068_validator(AUDIENCE)
    expect_refused(lambda: validator.authenticate_token(forged(TOKEN)), "a forged token")
    other = rfc9068_validator(OTHER_AUDIENCE)
    expect_refused(
        lambda: other.validate_token(other.authenticate_token(TOKEN), scopes=None, request=None), "another audience"
    )
    claims = validator.authenticate_token(TOKEN)
    try:
        validator.validate_token(claims, scopes=["admin"], request=None)
    except InsufficientScopeError:
        return
    raise AssertionError("accepted a token without the required scope")


# ---------------------------------------------------------------------------------
# OAuth clients


def me_status(session):
    return session.get(f"{URL}/users/me", timeout=TIMEOUT).status_code


@check(label("authlib", "authlib OAuth2Session"), "password grant, refresh, revocation")
def _():
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(client_id="latch")
    first = session.fetch_token(TOKEN_ENDPOINT, username=USER, password=PASSWORD)
    expect(first["token_type"].lower() == "bearer" and first["refresh_token"], f"token {first}")
    expect(me_status(session) == 200, "the access token does not work")

    second = session.refresh_token(TOKEN_ENDPOINT)
    expect(second["refresh_token"] != first["refresh_token"], "refresh token not rotated")
    expect(second["access_token"] != first["access_token"], "same access token after refresh")
    expect(me_status(session) == 200, "the refreshed access token does not work")

    response = session.revoke_token(REVOCATION_ENDPOINT, token=second["refresh_token"], token_type_hint="refresh_token")
    expect(response.status_code == 200, f"revoke answered {response.status_code}: {response.text}")
    try:
        session.refresh_token(TOKEN_ENDPOINT)
    except OAuthError as error:
        expect(error.error == "invalid_grant", f"revoked refresh token: {error.error}")
    else:
        raise AssertionError("accepted a revoked refresh token")


@check(label("requests-oauthlib", "requests-oauthlib OAuth2Session"), "password grant, refresh, revocation")
def _():
    from oauthlib.oauth2 import LegacyApplicationClient
    from requests_oauthlib import OAuth2Session

    session = OAuth2Session(client=LegacyApplicationClient(client_id="latch"))
    first = session.fetch_token(TOKEN_ENDPOINT, username=USER, password=PASSWORD)
    expect(first["token_type"].lower() == "bearer" and first["refresh_token"], f"token {first}")
    expect(me_status(session) == 200, "the access token does not work")

    second = session.refresh_token(TOKEN_ENDPOINT)
    expect(second["refresh_token"] != first["refresh_token"], "refresh token not rotated")
    expect(me_status(session) == 200, "the refreshed access token does not work")

    # requests-oauthlib has no revocation method: an RFC 7009 request through the session.
    response = session.post(
        REVOCATION_ENDPOINT,
        data={"token": second["refresh_token"], "token_type_hint": "refresh_token"},
        timeout=TIMEOUT,
    )
    expect(response.status_code == 200, f"revoke answered {response.status_code}: {response.text}")
    expect_refused(lambda: session.refresh_token(TOKEN_ENDPOINT), "a revoked refresh token")


@check(label("authlib", "authlib OAuth2Session"), "confidential client: grant + introspection")
def _():
    from authlib.integrations.requests_client import OAuth2Session

    if not (CLIENT_ID and CLIENT_SECRET):
        raise Skip("LATCH_CLIENT_ID and LATCH_CLIENT_SECRET not set")
    endpoint = DISCOVERY.get("introspection_endpoint")
    expect(endpoint, "discovery has no introspection_endpoint")
    # The defaults for a client with a secret: client_secret_basic everywhere.
    session = OAuth2Session(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    token = session.fetch_token(TOKEN_ENDPOINT, username=USER, password=PASSWORD)
    expect(me_status(session) == 200, "the access token does not work")
    answer = session.introspect_token(endpoint, token=token["access_token"]).json()
    expect(answer.get("active") is True, f"introspection: {answer}")
    expect(answer.get("client_id") == CLIENT_ID and answer.get("username") == USER, f"introspection: {answer}")
    session.revoke_token(REVOCATION_ENDPOINT, token=token["refresh_token"], token_type_hint="refresh_token")
    answer = session.introspect_token(endpoint, token=token["refresh_token"]).json()
    expect(answer == {"active": False}, f"introspection of a revoked token: {answer}")


# ---------------------------------------------------------------------------------
# CORS, as a browser asks


def cors_headers(response):
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def preflight(origin):
    return requests.options(
        TOKEN_ENDPOINT,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
        timeout=TIMEOUT,
    )


@check("CORS (browser)", "preflight of /token from an allowed origin")
def _():
    if not CORS_ORIGIN:
        raise Skip("LATCH_CORS_ORIGIN not set")
    response = preflight(CORS_ORIGIN)
    expect(response.status_code == 204, f"status {response.status_code}")
    headers = cors_headers(response)
    expect(headers.get("access-control-allow-origin") == CORS_ORIGIN, f"headers {headers}")
    expect(headers.get("access-control-allow-credentials") == "true", f"headers {headers}")
    methods = [m.strip().upper() for m in headers.get("access-control-allow-methods", "").split(",")]
    expect("POST" in methods, f"methods {methods}")
    # With credentials, browsers read "*" as a header name, not as a wildcard.
    allowed = {h.strip() for h in headers.get("access-control-allow-headers", "").lower().split(",")}
    expect({"content-type", "authorization"} <= allowed, f"headers {headers}")
    vary = [v.strip().lower() for v in response.headers.get("vary", "").split(",")]
    expect("origin" in vary, f"Vary: {response.headers.get('vary')}")

    # The request that follows the preflight: the browser reads it only with these headers.
    token = requests.post(
        TOKEN_ENDPOINT,
        data={"grant_type": "password", "username": USER, "password": PASSWORD},
        headers={"Origin": CORS_ORIGIN},
        timeout=TIMEOUT,
    )
    headers = cors_headers(token)
    expect(token.status_code == 200, f"token status {token.status_code}")
    expect(headers.get("access-control-allow-origin") == CORS_ORIGIN, f"token response headers {headers}")


@check("CORS (browser)", "nothing for an origin not allowed")
def _():
    refused = "http://not-allowed.example"
    for response in (
        preflight(refused),
        requests.post(TOKEN_ENDPOINT, data={"grant_type": "password"}, headers={"Origin": refused}, timeout=TIMEOUT),
    ):
        expect(cors_headers(response) == {}, f"{response.request.method}: {cors_headers(response)}")


@check("CORS (browser)", "JWKS and discovery: Access-Control-Allow-Origin *")
def _():
    for url in (JWKS_URI, f"{URL}/.well-known/openid-configuration"):
        response = requests.get(url, headers={"Origin": "http://any.example"}, timeout=TIMEOUT)
        expect(response.headers.get("access-control-allow-origin") == "*", f"{url}: {cors_headers(response)}")


if __name__ == "__main__":
    main()
