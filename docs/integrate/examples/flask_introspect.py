"""Introspection: views where a logout must count at once, not at the token's expiry.

Needs a confidential client: `latch client create --name notes-api --confidential --json`.
"""

import os

from flask import Flask

from latch_client.flask import LatchFlask, current_claims

latch = LatchFlask(
    issuer=os.environ.get("LATCH_ISSUER", "http://127.0.0.1:8080"),
    client_id=os.environ["LATCH_CLIENT_ID"],
    client_secret=os.environ["LATCH_CLIENT_SECRET"],
)
app = Flask(__name__)


@app.get("/notes")
@latch.require
def notes():
    """Checked locally: fast, and valid until the token's exp even after a logout."""
    return {"user_id": current_claims().sub}


@app.post("/notes/export")
@latch.require(introspect=True)
def export_notes():
    """Checked with Latch on every request: refused as soon as the session ends."""
    return {"user_id": current_claims().sub, "export": "started"}
