"""Introspection: routes where a logout must count at once, not at the token's expiry.

Needs a confidential client: `latch client create --name notes-api --confidential --json`.
"""

import os

from fastapi import Depends, FastAPI

from latch_client import Claims
from latch_client.fastapi import LatchFastAPI

latch = LatchFastAPI(
    issuer=os.environ.get("LATCH_ISSUER", "http://127.0.0.1:8080"),
    client_id=os.environ["LATCH_CLIENT_ID"],
    client_secret=os.environ["LATCH_CLIENT_SECRET"],
)

app = FastAPI(title="Notes API")


@app.get("/notes")
def notes(claims: Claims = Depends(latch.user())) -> dict:
    """Checked locally: fast, and valid until the token's exp even after a logout."""
    return {"user_id": claims.sub}


@app.post("/notes/export")
def export_notes(claims: Claims = Depends(latch.user(introspect=True))) -> dict:
    """Checked with Latch on every request: refused as soon as the session ends."""
    return {"user_id": claims.sub, "export": "started"}
