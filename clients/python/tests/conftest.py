"""Fixtures: real `latch serve` processes on free ports (binary from LATCH_BIN), users
and tokens obtained over HTTP, and a small JWKS server for tokens signed with our own
keys (expiry, forged headers, kid floods) that Latch itself will never issue."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

PASSWORD = "correct horse battery staple 42"


def latch_bin() -> str:
    path = os.environ.get("LATCH_BIN")
    if not path:
        pytest.fail("LATCH_BIN is not set: point it at a `latch` binary (e.g. target/debug/latch)", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"LATCH_BIN={path!r} is not an executable file", pytrace=False)
    return path


@dataclass
class User:
    id: str
    username: str
    email: str
    password: str


class LatchServer:
    """One `latch serve` child process with its own data directory."""

    def __init__(self, binary: str, data_dir: Path, env: Dict[str, str]) -> None:
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
        self.env.update(
            LATCH_LISTEN="127.0.0.1:0",
            LATCH_DATA_DIR=str(data_dir),
            LATCH_RATE_LIMIT="off",
            LATCH_LOG="warn",
        )
        self.env.update(env)
        self.output: List[str] = []
        self.process = subprocess.Popen(
            [binary, "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            # Keeps draining the pipe so that a chatty server never blocks on it.
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 30
        self.url = ""
        while not self.url:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                pytest.fail("latch serve did not print `listening on`; its output:\n" + "".join(self.output))
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1).rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "http"):
            self.http.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs `latch <args>` against this server's data (same environment); fails the
        test with the command's output when it exits non-zero."""
        done = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            pytest.fail(f"`latch {' '.join(args)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def register(self) -> User:
        name = "u" + uuid.uuid4().hex[:12]
        email = f"{name}@example.com"
        response = self.http.post("/users", json={"username": name, "email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return User(id=response.json()["id"], username=name, email=email, password=PASSWORD)

    def token_response(self, user: User, **form: str) -> Dict[str, Any]:
        response = self.http.post(
            "/token",
            data={"grant_type": "password", "username": user.username, "password": user.password, **form},
        )
        assert response.status_code == 200, response.text
        body: Dict[str, Any] = response.json()
        return body

    def token(self, user: User, **form: str) -> str:
        token: str = self.token_response(user, **form)["access_token"]
        return token

    def logout(self, token: str) -> None:
        response = self.http.post("/logout", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204, response.text

    def confidential_client(self) -> Dict[str, str]:
        """A registered confidential client, created with `latch client create`."""
        done = self.cli("client", "create", "--name", "t-" + uuid.uuid4().hex[:8], "--confidential", "--json")
        created: Dict[str, str] = json.loads(done.stdout)
        assert created.get("client_id") and created.get("client_secret"), done.stdout
        # A running server follows the client registry like its keys (within a second
        # on SQLite): wait until it knows the new client.
        credentials = (created["client_id"], created["client_secret"])
        deadline = time.monotonic() + 5
        while self.http.post("/introspect", data={"token": "x"}, auth=credentials).status_code == 401:
            assert time.monotonic() < deadline, "the server did not learn the new client within 5 s"
            time.sleep(0.1)
        return created


@pytest.fixture(scope="session")
def latch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LatchServer]:
    """The shared server with default settings. Tests that change its keys or
    configuration start their own with `start_latch`."""
    server = LatchServer(latch_bin(), tmp_path_factory.mktemp("latch"), {})
    yield server
    server.stop()


@pytest.fixture
def start_latch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LatchServer]]:
    """Starts an extra server with the given LATCH_* settings, stopped after the test."""
    started: List[LatchServer] = []

    def start(**env: str) -> LatchServer:
        server = LatchServer(latch_bin(), tmp_path_factory.mktemp("latch"), env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def user(latch: LatchServer) -> User:
    return latch.register()


@pytest.fixture(scope="session")
def confidential_client(latch: LatchServer) -> Dict[str, str]:
    return latch.confidential_client()


class JwksServer:
    """An issuer of our own on a free port: discovery and a JWKS whose keys the test
    controls, counting the JWKS requests it serves. Signs tokens like Latch does."""

    def __init__(self) -> None:
        self.jwks_hits = 0
        self.private_keys: Dict[str, ec.EllipticCurvePrivateKey] = {}
        self.published: List[Dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body: Dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.url, "jwks_uri": server.url + "/jwks"}
                elif self.path == "/jwks":
                    server.jwks_hits += 1
                    body = {"keys": list(server.published)}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add_key(self, publish: bool = True) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = uuid.uuid4().hex
        self.private_keys[kid] = key
        if publish:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid, alg="ES256", use="sig")
            self.published.append(jwk)
        return kid

    def claims(self, **overrides: Any) -> Dict[str, Any]:
        now = int(time.time())
        claims: Dict[str, Any] = {
            "iss": self.url,
            "sub": str(uuid.uuid4()),
            "aud": self.url,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "client_id": "latch",
            "scope": "openid profile email",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, kid: str, headers: Optional[Dict[str, Any]] = None, **claims: Any) -> str:
        header: Dict[str, Any] = {"typ": "at+jwt", "kid": kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        return jwt.encode(self.claims(**claims), self.private_keys[kid], algorithm="ES256", headers=header)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()
