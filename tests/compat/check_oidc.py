"""OpenID relying parties against Latch (SPEC §8), each library as its documentation
shows it: authlib's OAuth client runs the code flow with PKCE as a public client,
validates the ID token (authlib's CodeIDToken: issuer, audience, nonce, at_hash,
signature through the JWKS), reads userinfo, refreshes and signs out through the
end-session endpoint; the FastAPI example of docs/oidc.md (authlib's Starlette
integration, a confidential client) signs a person in and out; and the client
credentials grant issues a client's own token.

The person is played by a `requests` session that follows Latch's redirects and fills in
its pages as a browser without script would: the sign-in form, then the consent form.

Environment: LATCH_URL, LATCH_USER, LATCH_PASSWORD (a registered user);
LATCH_PUBLIC_CLIENT_ID (a public client with redirect URI APP_CALLBACK and post-logout
URI APP_HOME); LATCH_CLIENT_ID and LATCH_CLIENT_SECRET (a confidential client with
redirect URI APP_AUTH, post-logout URI APP_HOME and scopes `openid profile email
offline_access reports`). Prints the table of harness.py; exits 1 unless all passed.
"""

import html
import os
import re
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from harness import check, expect, label, main

URL = os.environ["LATCH_URL"].rstrip("/")
USER = os.environ["LATCH_USER"]
PASSWORD = os.environ["LATCH_PASSWORD"]
PUBLIC_ID = os.environ["LATCH_PUBLIC_CLIENT_ID"]
CLIENT_ID = os.environ["LATCH_CLIENT_ID"]
CLIENT_SECRET = os.environ["LATCH_CLIENT_SECRET"]
APP = "http://127.0.0.1:8000"
APP_CALLBACK = f"{APP}/callback"
APP_HOME = f"{APP}/"
TIMEOUT = 10

METADATA = requests.get(f"{URL}/.well-known/openid-configuration", timeout=TIMEOUT).json()


def hidden_fields(page):
    return {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}


def browse(browser, url):
    """Goes where `url` leads as a person would — signing in and allowing access on
    Latch's pages — until Latch sends the browser off to the application; returns that
    address."""
    response = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(10):
        if response.status_code in (302, 303):
            target = urljoin(response.url, response.headers["location"])
            if not target.startswith(URL):
                return target
            response = browser.get(target, allow_redirects=False, timeout=TIMEOUT)
            continue
        expect(response.status_code == 200, f"{response.url}: {response.status_code} {response.text[:300]}")
        page, fields = response.text, hidden_fields(response.text)
        headers = {"Origin": URL}
        if 'action="/login"' in page:
            fields.update(username=USER, password=PASSWORD)
            response = browser.post(f"{URL}/login", data=fields, headers=headers, allow_redirects=False, timeout=TIMEOUT)
        elif 'action="/authorize"' in page:
            fields["decision"] = "allow"
            response = browser.post(
                f"{URL}/authorize", data=fields, headers=headers, allow_redirects=False, timeout=TIMEOUT
            )
        else:
            raise AssertionError(f"an unexpected page at {response.url}: {page[:300]}")
    raise AssertionError("too many steps")


PUBLIC = {}


@check(label("authlib", "authlib OAuth2Session"), "code + PKCE (public client), ID token validated (CodeIDToken)")
def _():
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

    client = OAuth2Session(
        PUBLIC_ID,
        redirect_uri=APP_CALLBACK,
        scope="openid profile email offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier, nonce = generate_token(48), generate_token(20)
    uri, state = client.create_authorization_url(METADATA["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    browser = requests.Session()
    callback = browse(browser, uri)
    expect(callback.startswith(APP_CALLBACK), callback)
    query = parse_qs(urlsplit(callback).query)
    expect(query["iss"] == [URL] and query["state"] == [state], f"RFC 9207 iss and state: {query}")
    token = client.fetch_token(METADATA["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    keys = JsonWebKey.import_key_set(requests.get(METADATA["jwks_uri"], timeout=TIMEOUT).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"values": [METADATA["issuer"]]}},
        claims_params={"nonce": nonce, "client_id": PUBLIC_ID, "access_token": token["access_token"]},
    )
    claims.validate()
    expect(claims["preferred_username"] == USER, claims)
    expect("refresh_token" in token, "offline_access was granted")
    PUBLIC.update(client=client, token=token, claims=claims, browser=browser)


@check(label("authlib", "authlib OAuth2Session"), "userinfo, then refresh")
def _():
    client, claims = PUBLIC["client"], PUBLIC["claims"]
    info = client.get(METADATA["userinfo_endpoint"], timeout=TIMEOUT)
    expect(info.status_code == 200 and info.json()["sub"] == claims["sub"], info.text)
    expect(info.json().get("email") == f"{USER}@example.com", info.text)
    old = client.token["access_token"]
    client.refresh_token(METADATA["token_endpoint"])
    expect(client.token["access_token"] != old, "a new access token")
    expect(client.get(METADATA["userinfo_endpoint"], timeout=TIMEOUT).status_code == 200, "the new token works")


@check(label("authlib", "authlib OAuth2Session"), "RP-initiated logout (end_session_endpoint)")
def _():
    from authlib.integrations.base_client import OAuthError

    client, browser = PUBLIC["client"], PUBLIC["browser"]
    query = urlencode(
        {"id_token_hint": PUBLIC["token"]["id_token"], "post_logout_redirect_uri": APP_HOME, "state": "bye-1"}
    )
    response = browser.get(f"{METADATA['end_session_endpoint']}?{query}", allow_redirects=False, timeout=TIMEOUT)
    expect(response.status_code == 302, f"{response.status_code} {response.text[:200]}")
    expect(response.headers["location"] == f"{APP_HOME}?state=bye-1", response.headers["location"])
    account = browser.get(f"{URL}/account", allow_redirects=False, timeout=TIMEOUT)
    expect(account.status_code == 303, "the browser is signed out of Latch")
    try:
        client.refresh_token(METADATA["token_endpoint"])
    except OAuthError as error:
        expect(error.error == "invalid_grant", error.error)
    else:
        raise AssertionError("the client's session outlived the logout")


@check(label("authlib", "authlib Starlette (FastAPI)"), "docs example: sign in (consent), session, sign out")
def _():
    import importlib.util

    from fastapi.testclient import TestClient

    os.environ.update(LATCH_CLIENT_ID=CLIENT_ID, LATCH_CLIENT_SECRET=CLIENT_SECRET, SESSION_SECRET="test-only")
    path = os.path.join(os.environ["LATCH_EXAMPLES"], "fastapi_oidc.py")
    spec = importlib.util.spec_from_file_location("fastapi_oidc", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    app = TestClient(example.app, base_url=APP, follow_redirects=False)
    browser = requests.Session()

    to_latch = app.get("/login")
    expect(to_latch.status_code == 302, to_latch.text)
    callback = browse(browser, to_latch.headers["location"])
    expect(callback.startswith(f"{APP}/auth?"), callback)
    signed_in = app.get(callback[len(APP) :])
    expect(signed_in.status_code in (302, 307), f"{signed_in.status_code} {signed_in.text}")
    home = app.get("/").json()
    expect(home["user"] and home["user"]["username"] == USER, home)

    to_logout = app.get("/logout")
    expect(app.get("/").json()["user"] is None, "signed out of the app")
    back = browser.get(to_logout.headers["location"], allow_redirects=False, timeout=TIMEOUT)
    expect(back.status_code == 302 and back.headers["location"] == APP_HOME, f"{back.status_code} {back.headers}")
    expect(browser.get(f"{URL}/account", allow_redirects=False, timeout=TIMEOUT).status_code == 303, "and of Latch")


@check(label("authlib", "authlib OAuth2Session"), "client credentials: the client's own token")
def _():
    from authlib.integrations.requests_client import OAuth2Session

    client = OAuth2Session(CLIENT_ID, CLIENT_SECRET, scope="reports")
    token = client.fetch_token(METADATA["token_endpoint"], grant_type="client_credentials")
    expect("refresh_token" not in token and token["scope"] == "reports", token)
    introspection = requests.post(
        METADATA["introspection_endpoint"],
        data={"token": token["access_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    ).json()
    expect(introspection["active"] and introspection["sub"] == CLIENT_ID, introspection)


if __name__ == "__main__":
    main()
