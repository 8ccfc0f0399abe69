"""Sign people in to a FastAPI app through Latch: OpenID Connect, code flow with PKCE,
with authlib's Starlette integration. The app never sees a password."""

import os
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

LATCH_URL = os.environ["LATCH_URL"].rstrip("/")  # e.g. https://auth.example.com

app = FastAPI()
# Keeps the state, nonce and PKCE verifier between the redirect and the callback, then
# who signed in.
app.add_middleware(SessionMiddleware, secret_key=os.environ["SESSION_SECRET"])

oauth = OAuth()
oauth.register(
    name="latch",
    server_metadata_url=f"{LATCH_URL}/.well-known/openid-configuration",
    client_id=os.environ["LATCH_CLIENT_ID"],
    client_secret=os.environ["LATCH_CLIENT_SECRET"],
    client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
)


@app.get("/login")
async def login(request: Request):
    return await oauth.latch.authorize_redirect(request, request.url_for("auth"))


@app.get("/auth")
async def auth(request: Request):
    try:
        token = await oauth.latch.authorize_access_token(request)
    except OAuthError as error:
        return {"error": error.error}
    claims = token["userinfo"]  # the ID token's claims, checked against Latch's keys
    request.session["user"] = {"id": claims["sub"], "username": claims["preferred_username"]}
    request.session["id_token"] = token["id_token"]
    return RedirectResponse("/")


@app.get("/")
async def home(request: Request):
    return {"user": request.session.get("user")}


@app.get("/logout")
async def logout(request: Request):
    # Signs out of Latch too (RP-initiated logout), then comes back to "/".
    metadata = await oauth.latch.load_server_metadata()
    id_token = request.session.pop("id_token", "")
    request.session.pop("user", None)
    query = urlencode(
        {
            "client_id": os.environ["LATCH_CLIENT_ID"],
            "id_token_hint": id_token,
            "post_logout_redirect_uri": str(request.url_for("home")),
        }
    )
    return RedirectResponse(f"{metadata['end_session_endpoint']}?{query}")
