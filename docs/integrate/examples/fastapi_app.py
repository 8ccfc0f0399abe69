"""A FastAPI API whose routes need a Latch access token.

Run it with `LATCH_ISSUER=http://127.0.0.1:8080 uvicorn fastapi_app:app --port 8000`
and open http://127.0.0.1:8000/docs.
"""

import os

from fastapi import Depends, FastAPI

from latch_client import Claims
from latch_client.fastapi import LatchFastAPI

# Latch's public URL (LATCH_PUBLIC_URL): the tokens' issuer and, by default, audience.
LATCH_ISSUER = os.environ.get("LATCH_ISSUER", "http://127.0.0.1:8080")

latch = LatchFastAPI(issuer=LATCH_ISSUER)

app = FastAPI(
    title="Notes API",
    # Swagger UI's "Authorize" dialog starts with these scopes ticked.
    swagger_ui_init_oauth={"scopes": "openid profile email"},
)


@app.get("/me")
def me(claims: Claims = Depends(latch.user())) -> dict:
    """Any valid access token."""
    return {"user_id": claims.sub, "session_id": claims.sid, "scopes": list(claims.scope)}


@app.get("/profile")
def profile(claims: Claims = Depends(latch.user(scopes=["profile"]))) -> dict:
    """Only tokens granted the `profile` scope; others get 403 insufficient_scope."""
    return {"user_id": claims.sub, "client": claims.client_id}


@app.get("/admin/stats")
def admin_stats(claims: Claims = Depends(latch.user(roles=["admin"]))) -> dict:
    """Only users with Latch's `admin` role."""
    return {"requested_by": claims.sub}
