"""POST /auth/login (AuthFunction) and imgclf.users."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from imgclf import tokens, users
from imgclf.errors import BadRequest
from imgclf.settings import get_settings
from imgclf.tables import UserRecord

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]


def login(invoke: Invoke, body: Any) -> Reply:
    return invoke("AuthFunction", rest_event("POST", "/auth/login", body=body))


def test_login_returns_a_bearer_token(alice: LoggedInUser, invoke: Invoke) -> None:
    reply = login(invoke, {"email": alice.email, "password": alice.password})
    assert reply.status == 200
    assert reply.body["token_type"] == "bearer"
    assert reply.body["expires_in"] == get_settings().jwt_ttl_seconds
    caller = tokens.verify_token(reply.body["access_token"])
    assert caller == tokens.Caller(user_id=alice.user_id, email=alice.email)


def test_login_email_is_case_and_space_insensitive(alice: LoggedInUser, invoke: Invoke) -> None:
    reply = login(invoke, {"email": f"  {alice.email.upper()} ", "password": alice.password})
    assert reply.status == 200


def test_unknown_email_and_wrong_password_get_the_same_401(
    alice: LoggedInUser, invoke: Invoke
) -> None:
    wrong_password = login(invoke, {"email": alice.email, "password": "nope"})
    unknown_email = login(invoke, {"email": "who@example.com", "password": alice.password})
    assert wrong_password.status == unknown_email.status == 401
    assert wrong_password.body == unknown_email.body
    assert wrong_password.body == {"message": "invalid email or password", "error": "unauthorized"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "x"}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "not-an-email", "password": "x"}, "email"),
        ({"email": 7, "password": "x"}, "email"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ({"email": "a@example.com", "password": ""}, "password"),
        ({"email": "a@example.com", "password": "x" * 1025}, "password"),
        ({"email": "a" * 250 + "@example.com", "password": "x"}, "email"),
    ],
)
def test_malformed_login_is_a_422_naming_the_field(
    body: dict[str, Any], field: str, aws: None, invoke: Invoke
) -> None:
    reply = login(invoke, body)
    assert reply.status == 422
    assert reply.body["error"] == "validation_error"
    assert ["body", field] in [error["loc"] for error in reply.body["detail"]]


@pytest.mark.parametrize("body", [None, [], "text"])
def test_login_without_an_object_body_is_a_422(body: Any, aws: None, invoke: Invoke) -> None:
    assert login(invoke, body).status == 422


def test_add_user_refuses_a_taken_email(alice: LoggedInUser) -> None:
    with pytest.raises(BadRequest):
        users.add_user(alice.email.upper(), "other")


def test_passwords_are_stored_hashed(alice: LoggedInUser) -> None:
    stored = UserRecord.get(alice.email)
    assert stored.password_hash.startswith("$argon2id$")
    assert alice.password not in stored.password_hash


def test_ensure_demo_user_creates_it_once(aws: None, invoke: Invoke) -> None:
    first = users.ensure_demo_user()
    assert users.ensure_demo_user().user_id == first.user_id
    reply = login(invoke, {"email": "admin@example.com", "password": "admin"})
    assert reply.status == 200


def test_cli_add_reads_the_password_from_stdin(
    aws: None, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert users.main(["add", "Carol@Example.com"]) == 0
    assert capsys.readouterr().out.startswith("carol@example.com ")
    assert login(invoke, {"email": "carol@example.com", "password": "s3cret pass"}).status == 200


def test_cli_add_refuses_a_taken_email(
    alice: LoggedInUser, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("whatever\n"))
    assert users.main(["add", alice.email]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_demo_creates_the_demo_user(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert users.main(["demo"]) == 0
    assert capsys.readouterr().out.startswith("admin@example.com ")
