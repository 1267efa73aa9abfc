"""imgclf.passwords: Argon2id hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from imgclf import passwords


def test_hash_verifies_only_the_same_password() -> None:
    hashed = passwords.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "correct horse")
    assert not passwords.verify_password(hashed, "Correct horse")


def test_hashes_are_salted() -> None:
    assert passwords.hash_password("x") != passwords.hash_password("x")


def test_a_malformed_hash_verifies_nothing() -> None:
    assert not passwords.verify_password("not-a-hash", "x")


def test_owasp_parameters_and_older_hashes_still_verify() -> None:
    assert "$m=19456,t=2,p=1$" in passwords.hash_password("x")
    older = PasswordHasher().hash("correct horse")  # argon2-cffi's default parameters
    assert passwords.verify_password(older, "correct horse")
    assert not passwords.verify_password(older, "wrong")
