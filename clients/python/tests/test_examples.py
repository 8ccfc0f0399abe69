"""The FastAPI and Flask examples of docs/integrate/, imported as they are with
LATCH_ISSUER pointing at a real Latch and driven with each framework's test client:
200 with a real token, 401 without, 403 without the scope or role."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional

import pytest
from fastapi.testclient import TestClient

from .conftest import LatchServer, User

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "integrate" / "examples"


def load(name: str, monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> ModuleType:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = EXAMPLES / name
    assert path.is_file(), f"missing example {path}"
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Api:
    """One interface over FastAPI's TestClient and Flask's test client."""

    def __init__(self, module: ModuleType) -> None:
        app = module.app
        self.flask = hasattr(app, "test_client")
        self.client: Any = app.test_client() if self.flask else TestClient(app)

    def call(self, method: str, path: str, token: Optional[str] = None) -> tuple[int, Any, Any]:
        """Status, JSON body and the (case-insensitive) headers."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.open(path, method=method, headers=headers) if self.flask else self.client.request(
            method, path, headers=headers
        )
        body = response.get_json() if self.flask else response.json()
        return response.status_code, body, response.headers


@pytest.mark.parametrize("name", ["fastapi_app.py", "flask_app.py"])
def test_app_example(name: str, latch: LatchServer, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(load(name, monkeypatch, {"LATCH_ISSUER": latch.url}))
    token = latch.token(user)

    status, body, _ = api.call("GET", "/me", token)
    assert status == 200, body
    assert body["user_id"] == user.id

    status, body, headers = api.call("GET", "/me")
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"

    status, body, headers = api.call("GET", "/me", token[:-2] + "xx")
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]

    status, body, headers = api.call("GET", "/admin/stats", token)
    assert status == 403
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]


@pytest.mark.parametrize("name", ["fastapi_app.py", "flask_app.py"])
def test_app_example_scopes(name: str, latch: LatchServer, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(load(name, monkeypatch, {"LATCH_ISSUER": latch.url}))

    status, body, _ = api.call("GET", "/profile", latch.token(user))
    assert status == 200, body
    assert body == {"user_id": user.id, "client": "latch"}

    status, body, headers = api.call("GET", "/profile", latch.token(user, scope="openid email"))
    assert status == 403, body
    assert 'scope="profile"' in headers["WWW-Authenticate"]


def test_fastapi_app_example_offers_latch_login_in_swagger_ui(latch: LatchServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["fastapi_app.py", "fastapi_oauth2.py"]:
        app = load(name, monkeypatch, {"LATCH_ISSUER": latch.url}).app
        flows = app.openapi()["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
        assert flows["password"]["tokenUrl"] == latch.url + "/token", name
    assert TestClient(app).get("/docs").status_code == 200


def test_fastapi_oauth2_example(latch: LatchServer, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(load("fastapi_oauth2.py", monkeypatch, {"LATCH_ISSUER": latch.url}))

    status, body, _ = api.call("GET", "/me", latch.token(user))
    assert status == 200, body
    assert body == {"user_id": user.id}

    status, _, headers = api.call("GET", "/me")
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"

    status, _, headers = api.call("GET", "/me", "garbage")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("name", ["fastapi_introspect.py", "flask_introspect.py"])
def test_introspect_example(
    name: str, latch: LatchServer, user: User, confidential_client: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "LATCH_ISSUER": latch.url,
        "LATCH_CLIENT_ID": confidential_client["client_id"],
        "LATCH_CLIENT_SECRET": confidential_client["client_secret"],
    }
    api = Api(load(name, monkeypatch, env))
    token = latch.token(user)

    status, body, _ = api.call("POST", "/notes/export", token)
    assert status == 200, body
    assert body["user_id"] == user.id
    assert api.call("POST", "/notes/export")[0] == 401

    latch.logout(token)

    status, _, headers = api.call("POST", "/notes/export", token)
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert api.call("GET", "/notes", token)[0] == 200, "checked locally: valid until exp"
