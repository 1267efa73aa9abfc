"""imgclf.settings: one typed object from the environment."""

from __future__ import annotations

import pytest
from imgclf.settings import Settings
from pydantic import ValidationError

REQUIRED = {
    "USERS_TABLE": "u",
    "PREDICTIONS_TABLE": "p",
    "FEEDBACK_TABLE": "f",
    "UPLOAD_BUCKET": "b",
    "JWT_SECRET": "s" * 32,
}


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_environ(REQUIRED)
    assert settings.jwt_issuer == "imgclf"
    assert settings.jwt_ttl_seconds == 3600
    assert settings.upload_max_bytes == 10 * 1024 * 1024
    assert settings.upload_url_ttl_seconds == 300
    assert settings.result_ttl_seconds == 86400
    assert settings.aws_endpoint_url is None


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_environ(
        {**REQUIRED, "UPLOAD_MAX_BYTES": "5", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    )
    assert settings.upload_max_bytes == 5
    assert settings.aws_endpoint_url == "http://127.0.0.1:4566"


def test_an_empty_variable_counts_as_unset() -> None:
    assert Settings.from_environ({**REQUIRED, "AWS_ENDPOINT_URL": ""}).aws_endpoint_url is None


def test_the_secret_is_not_printed() -> None:
    assert "s" * 32 not in repr(Settings.from_environ(REQUIRED))


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_required_variable_is_named(missing: str) -> None:
    environ = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        Settings.from_environ(environ)


@pytest.mark.parametrize(
    "bad", [{"UPLOAD_MAX_BYTES": "0"}, {"JWT_TTL_SECONDS": "soon"}, {"JWT_SECRET": "short"}]
)
def test_bad_values_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ({**REQUIRED, **bad})
