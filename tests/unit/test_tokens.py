"""imgclf.tokens: HS256 tokens with sub, email, iss, iat, exp; everything else is refused."""

from __future__ import annotations

import time

import jwt
import pytest
from imgclf import tokens
from imgclf.errors import Unauthorized
from imgclf.settings import get_settings

SECRET = get_settings().jwt_secret.get_secret_value()


def claims() -> dict[str, object]:
    now = int(time.time())
    return {"sub": "u1", "email": "a@example.com", "iss": "imgclf", "iat": now, "exp": now + 60}


def test_issued_token_verifies() -> None:
    caller = tokens.verify_token(tokens.issue_token("u1", "a@example.com"))
    assert caller == tokens.Caller(user_id="u1", email="a@example.com")


def test_issued_token_carries_the_configured_lifetime() -> None:
    payload = jwt.decode(
        tokens.issue_token("u1", "a@example.com", now=1_000),
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert payload["iat"] == 1_000
    assert payload["exp"] == 1_000 + get_settings().jwt_ttl_seconds
    assert payload["iss"] == "imgclf"


def test_expired_token_is_refused() -> None:
    token = tokens.issue_token("u1", "a@example.com", now=int(time.time()) - 7200)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify_token(token)


def test_forged_signature_is_refused() -> None:
    forged = jwt.encode(claims(), "another-secret-of-enough-length!", algorithm="HS256")
    with pytest.raises(Unauthorized):
        tokens.verify_token(forged)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(Unauthorized):
        tokens.verify_token(unsigned)


def test_other_hmac_algorithm_is_refused() -> None:
    with pytest.raises(Unauthorized):
        tokens.verify_token(jwt.encode(claims(), SECRET, algorithm="HS512"))


def test_wrong_issuer_is_refused() -> None:
    with pytest.raises(Unauthorized):
        tokens.verify_token(jwt.encode({**claims(), "iss": "evil"}, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("missing", ["sub", "email", "iss", "iat", "exp"])
def test_token_missing_a_claim_is_refused(missing: str) -> None:
    payload = claims()
    del payload[missing]
    with pytest.raises(Unauthorized):
        tokens.verify_token(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_non_string_email_is_refused() -> None:
    with pytest.raises(Unauthorized):
        tokens.verify_token(jwt.encode({**claims(), "email": 7}, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30."])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        tokens.verify_token(garbage)


@pytest.mark.parametrize(
    ("header", "token"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER x.y.z", "x.y.z")]
)
def test_bearer_token_is_taken_from_the_header(header: str, token: str) -> None:
    assert tokens.bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic abc", "abc"])
def test_missing_or_other_scheme_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        tokens.bearer_token(header)
