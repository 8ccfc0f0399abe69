"""Verifier against real Latch tokens and keys, and against tokens signed with our own
keys for what Latch never issues (expired beyond the leeway, forged headers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from latch_client import (
    Claims,
    ExpiredToken,
    InsufficientScope,
    InvalidToken,
    LatchUnavailable,
    UnknownKey,
    Verifier,
)

from .conftest import JwksServer, LatchServer, User


def b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- real Latch tokens -------------------------------------------------------------


def test_verifies_a_real_token(latch: LatchServer, user: User) -> None:
    response = latch.token_response(user)
    claims = Verifier(latch.url).verify(response["access_token"])

    assert isinstance(claims, Claims)
    assert claims.sub == user.id
    assert claims.iss == latch.url
    assert claims.aud == (latch.url,)
    assert claims.client_id == "latch"
    assert claims.sid and claims.jti
    assert claims.exp - claims.iat == response["expires_in"]
    assert abs(claims.iat - time.time()) < 60
    assert claims.roles == ()
    assert claims.raw["sub"] == user.id


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
def test_verifies_every_algorithm_latch_signs_with(start_latch: Callable[..., LatchServer], algorithm: str) -> None:
    server = start_latch(LATCH_SIGNING_ALGORITHM=algorithm)
    account = server.register()
    token = server.token(account)
    assert jwt.get_unverified_header(token)["alg"] == algorithm

    assert Verifier(server.url).verify(token).sub == account.id
    with pytest.raises(InvalidToken):
        Verifier(server.url).verify(token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB"))


def test_scope_claim_is_a_tuple_of_granted_scopes(latch: LatchServer, user: User) -> None:
    claims = Verifier(latch.url).verify(latch.token(user))

    assert claims.scope == ("openid", "profile", "email")
    assert "email" in claims.scope and claims.has_scopes("openid", "email")
    assert not claims.has_scopes("admin")
    with pytest.raises(InsufficientScope) as refused:
        claims.require(scopes=["email", "notes:write"], roles=["admin"])
    assert refused.value.missing_scopes == ("notes:write",)
    assert refused.value.missing_roles == ("admin",)


def test_client_id_comes_from_the_token_request(latch: LatchServer, user: User) -> None:
    claims = Verifier(latch.url).verify(latch.token(user, client_id="mobile-app"))

    assert claims.client_id == "mobile-app"


def test_issuer_with_trailing_slash_is_the_same_issuer(latch: LatchServer, user: User) -> None:
    assert Verifier(latch.url + "/").verify(latch.token(user)).sub == user.id


def test_tampered_tokens_are_refused(latch: LatchServer, user: User) -> None:
    token = latch.token(user)
    header, payload, signature = token.split(".")
    verifier = Verifier(latch.url)
    verifier.verify(token)

    other = dict(b64json(payload), sub="00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidToken, match="[Ss]ignature"):
        verifier.verify(".".join([header, b64(other), signature]))

    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(InvalidToken):
        verifier.verify(".".join([header, payload, flipped]))

    for junk in ["", "not-a-jwt", "a.b.c", token + "x", ".".join([header, payload])]:
        with pytest.raises(InvalidToken):
            verifier.verify(junk)


def test_wrong_audience_is_refused(latch: LatchServer, user: User) -> None:
    token = latch.token(user)

    with pytest.raises(InvalidToken, match="[Aa]udience"):
        Verifier(latch.url, audience="https://api.example.com").verify(token)
    assert Verifier(latch.url, audience=["https://api.example.com", latch.url]).verify(token).sub == user.id


def test_wrong_issuer_is_refused(latch: LatchServer, user: User) -> None:
    token = latch.token(user)
    jwks_uri = latch.url + "/.well-known/jwks.json"

    # Keys that verify the signature, but the token names another issuer.
    verifier = Verifier("https://auth.example.com", audience=latch.url, jwks_uri=jwks_uri)
    with pytest.raises(InvalidToken, match="[Ii]ssuer"):
        verifier.verify(token)

    # An issuer URL spelled differently from Latch's public URL is caught at discovery.
    other_spelling = latch.url.replace("127.0.0.1", "localhost")
    with pytest.raises(LatchUnavailable, match="names issuer"):
        Verifier(other_spelling, audience=latch.url).verify(token)


def test_token_of_another_latch_is_refused(latch: LatchServer, start_latch: Callable[..., LatchServer]) -> None:
    other = start_latch()
    token = other.token(other.register())

    with pytest.raises(UnknownKey):
        Verifier(latch.url).verify(token)
    with pytest.raises(InvalidToken, match="[Ii]ssuer|[Aa]udience"):
        Verifier(latch.url, jwks_uri=other.url + "/.well-known/jwks.json").verify(token)


def test_expired_real_token_is_refused(start_latch: Callable[..., LatchServer]) -> None:
    server = start_latch(LATCH_ACCESS_TOKEN_TTL="2s")
    token = server.token(server.register())
    verifier = Verifier(server.url, leeway=0)
    claims = verifier.verify(token)
    assert claims.exp - claims.iat == 2

    time.sleep(max(0.0, claims.exp + 1.2 - time.time()))

    with pytest.raises(ExpiredToken):
        verifier.verify(token)
    assert Verifier(server.url, leeway=30).verify(token).sub == claims.sub, "within the leeway it still passes"


def test_key_rotation_now_is_picked_up(start_latch: Callable[..., LatchServer]) -> None:
    server = start_latch()
    account = server.register()
    old_token = server.token(account)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    verifier = Verifier(server.url, min_refetch_interval=0.5)
    assert verifier.verify(old_token).sub == account.id

    server.cli("keys", "rotate", "--now")
    deadline = time.monotonic() + 10
    new_token = server.token(account)
    while jwt.get_unverified_header(new_token)["kid"] == old_kid:
        assert time.monotonic() < deadline, "Latch still signs with the old key 10 s after `keys rotate --now`"
        time.sleep(0.2)
        new_token = server.token(account)
    time.sleep(0.6)  # past min_refetch_interval since the first fetch

    assert verifier.verify(new_token).sub == account.id
    assert verifier.jwks_fetches == 2
    # `--now` drops the old key from JWKS: its tokens no longer verify.
    with pytest.raises(UnknownKey):
        verifier.verify(old_token)


def test_unknown_kids_refetch_latch_jwks_at_most_once_per_interval(latch: LatchServer, user: User) -> None:
    token = latch.token(user)
    header, payload, signature = token.split(".")
    verifier = Verifier(latch.url, min_refetch_interval=0.5)
    verifier.verify(token)
    assert verifier.jwks_fetches == 1
    time.sleep(0.6)

    for i in range(20):
        forged = dict(b64json(header), kid=f"forged-{i}")
        with pytest.raises(UnknownKey):
            verifier.verify(".".join([b64(forged), payload, signature]))

    assert verifier.jwks_fetches == 2, "one refetch for the first unknown kid, none for the rest"
    assert verifier.verify(token).sub == user.id


# --- our own issuer: what Latch never signs -------------------------------------------


def test_unknown_kid_refetch_is_rate_limited(jwks_server: JwksServer) -> None:
    first = jwks_server.add_key()
    verifier = Verifier(jwks_server.url, min_refetch_interval=1.0)
    verifier.verify(jwks_server.sign(first))
    assert jwks_server.jwks_hits == 1

    unpublished = jwks_server.add_key(publish=False)
    for _ in range(10):
        with pytest.raises(UnknownKey):
            verifier.verify(jwks_server.sign(unpublished))
    assert jwks_server.jwks_hits == 1, "no refetch within min_refetch_interval of the last fetch"

    time.sleep(1.1)
    rotated = jwks_server.add_key()
    for _ in range(5):
        assert verifier.verify(jwks_server.sign(rotated)).client_id == "latch"
    assert jwks_server.jwks_hits == 2, "one refetch once the interval passed, then the key is cached"

    for _ in range(10):
        with pytest.raises(UnknownKey):
            verifier.verify(jwks_server.sign(unpublished))
    assert jwks_server.jwks_hits == 2


def test_keys_are_refetched_after_the_cache_ttl(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    verifier = Verifier(jwks_server.url, jwks_cache_ttl=0.5, min_refetch_interval=0)
    verifier.verify(jwks_server.sign(kid))
    verifier.verify(jwks_server.sign(kid))
    assert jwks_server.jwks_hits == 1

    jwks_server.published.clear()  # the key is withdrawn
    time.sleep(0.6)
    with pytest.raises(UnknownKey):
        verifier.verify(jwks_server.sign(kid))
    assert jwks_server.jwks_hits == 2


def test_expiry_and_leeway(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    now = int(time.time())
    verifier = Verifier(jwks_server.url)  # leeway 5 s, as Latch

    with pytest.raises(ExpiredToken):
        verifier.verify(jwks_server.sign(kid, exp=now - 10, iat=now - 100))
    assert verifier.verify(jwks_server.sign(kid, exp=now - 2, iat=now - 100)).exp == now - 2
    with pytest.raises(ExpiredToken):
        Verifier(jwks_server.url, leeway=0).verify(jwks_server.sign(kid, exp=now - 2, iat=now - 100))


def test_not_yet_valid_tokens_are_refused(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    now = int(time.time())
    verifier = Verifier(jwks_server.url)

    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(jwks_server.sign(kid, nbf=now + 60))
    with pytest.raises(InvalidToken, match="future|not yet valid"):
        verifier.verify(jwks_server.sign(kid, iat=now + 60))
    assert verifier.verify(jwks_server.sign(kid, iat=now + 2, nbf=now + 2)).iat == now + 2


@pytest.mark.parametrize("typ", ["JWT", "", "id_token"])
def test_only_access_tokens_pass(jwks_server: JwksServer, typ: str) -> None:
    kid = jwks_server.add_key()
    verifier = Verifier(jwks_server.url)
    assert verifier.verify(jwks_server.sign(kid, headers={"typ": "application/at+JWT"})).sub

    with pytest.raises(InvalidToken, match="typ"):
        verifier.verify(jwks_server.sign(kid, headers={"typ": typ}))


def test_unknown_critical_headers_are_refused(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()

    with pytest.raises(InvalidToken, match="critical"):
        Verifier(jwks_server.url).verify(jwks_server.sign(kid, headers={"crit": ["exp"]}))


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "jti", "client_id", "aud", "iss"])
def test_required_claims(jwks_server: JwksServer, missing: str) -> None:
    kid = jwks_server.add_key()

    with pytest.raises(InvalidToken):
        Verifier(jwks_server.url).verify(jwks_server.sign(kid, **{missing: None}))


def test_claims_of_the_wrong_type_are_refused(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    verifier = Verifier(jwks_server.url)

    with pytest.raises(InvalidToken, match="roles"):
        verifier.verify(jwks_server.sign(kid, roles="admin"))
    with pytest.raises(InvalidToken, match="scope"):
        verifier.verify(jwks_server.sign(kid, scope=["openid"]))
    claims = verifier.verify(jwks_server.sign(kid, roles=["admin", "ops"], aud=["x", jwks_server.url]))
    assert claims.roles == ("admin", "ops") and claims.has_roles("admin")
    assert claims.aud == ("x", jwks_server.url)


def test_the_key_decides_the_algorithm(jwks_server: JwksServer) -> None:
    kid = jwks_server.add_key()
    verifier = Verifier(jwks_server.url)
    claims = jwks_server.claims()
    public_pem = (
        jwks_server.private_keys[kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    unsigned = ".".join([b64({"alg": "none", "typ": "at+jwt", "kid": kid}), b64(claims), ""])
    with pytest.raises(InvalidToken, match="alg"):
        verifier.verify(unsigned)

    # The classic confusion: HMAC keyed with the public key's bytes.
    header = b64({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    signing_input = f"{header}.{b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="alg"):
        verifier.verify(forged)

    # A real ES256 signature under a header claiming another algorithm.
    _, payload, signature = jwks_server.sign(kid).split(".")
    relabelled = ".".join([b64({"alg": "ES384", "typ": "at+jwt", "kid": kid}), payload, signature])
    with pytest.raises(InvalidToken, match="alg"):
        verifier.verify(relabelled)


def test_unreachable_latch_is_unavailable_not_invalid() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    verifier = Verifier(f"http://127.0.0.1:{port}", timeout=2)
    token = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"typ": "at+jwt", "kid": "k"})

    with pytest.raises(LatchUnavailable):
        verifier.verify(token)
    started = time.monotonic()
    with pytest.raises(LatchUnavailable):
        verifier.verify(token)
    assert time.monotonic() - started < 0.5, "a failed fetch is not retried within min_refetch_interval"
    assert verifier.jwks_fetches == 0, "discovery failed before any JWKS request"


def test_unsupported_algorithms_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="HS256"):
        Verifier("http://127.0.0.1:1", algorithms=["HS256"])
