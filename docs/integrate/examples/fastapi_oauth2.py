"""What LatchFastAPI does, spelled out with FastAPI's own OAuth2PasswordBearer and the
package's Verifier: the same 401 answers, and the same "Authorize" button."""

import os

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer

from latch_client import Claims, InvalidToken, Verifier

LATCH_ISSUER = os.environ.get("LATCH_ISSUER", "http://127.0.0.1:8080")

# Swagger UI posts the username and password of its "Authorize" dialog to this URL:
# Latch's token endpoint, on another origin (allow it with LATCH_CORS_ORIGINS).
oauth2 = OAuth2PasswordBearer(tokenUrl=f"{LATCH_ISSUER}/token")
verifier = Verifier(LATCH_ISSUER)

app = FastAPI(title="Notes API")


def current_user(token: str = Depends(oauth2)) -> Claims:
    try:
        return verifier.verify(token)
    except InvalidToken as error:
        raise HTTPException(
            status_code=401,
            detail=str(error),
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from error


@app.get("/me")
def me(claims: Claims = Depends(current_user)) -> dict:
    return {"user_id": claims.sub}
