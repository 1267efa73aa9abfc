"""Password hashing with Argon2id, at OWASP's recommended parameters.

OWASP's Password Storage Cheat Sheet recommends Argon2id with 19 MiB of memory, 2 passes
and 1 lane. argon2-cffi's own default (64 MiB, 3 passes, 4 lanes) costs about 8 times the
CPU per login, and its 4 lanes buy nothing on a 512 MB function's fraction of a vCPU.
Every hash carries its parameters, so hashes made with other parameters still verify.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``, salt and parameters included."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a malformed hash too)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verified against when the email is unknown, so both failures take the same time.
DUMMY_HASH = hash_password("imgclf: no such user")
