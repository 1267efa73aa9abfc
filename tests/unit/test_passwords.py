"""imgclf.passwords: Argon2id hashes."""

from __future__ import annotations

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
