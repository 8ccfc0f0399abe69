"""A Flask API whose routes need a Latch access token.

Run it with `LATCH_ISSUER=http://127.0.0.1:8080 flask --app flask_app run`.
"""

import os

from flask import Flask, g

from latch_client.flask import LatchFlask, current_claims

# Latch's public URL (LATCH_PUBLIC_URL): the tokens' issuer and, by default, audience.
LATCH_ISSUER = os.environ.get("LATCH_ISSUER", "http://127.0.0.1:8080")

latch = LatchFlask(issuer=LATCH_ISSUER)
app = Flask(__name__)


@app.get("/me")
@latch.require
def me():
    """Any valid access token."""
    claims = current_claims()
    return {"user_id": claims.sub, "session_id": claims.sid, "scopes": list(claims.scope)}


@app.get("/profile")
@latch.require(scopes=["profile"])
def profile():
    """Only tokens granted the `profile` scope; others get 403 insufficient_scope."""
    return {"user_id": g.latch_claims.sub, "client": g.latch_claims.client_id}


@app.get("/admin/stats")
@latch.require(roles=["admin"])
def admin_stats():
    """Only users with Latch's `admin` role."""
    return {"requested_by": current_claims().sub}
