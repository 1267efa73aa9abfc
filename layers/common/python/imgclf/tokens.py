"""Access tokens: JWTs signed with HS256, carrying sub (user id), email, iss, iat and exp."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from imgclf.errors import Unauthorized
from imgclf.settings import get_settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Caller:
    """Who a valid token says the caller is."""

    user_id: str
    email: str


def issue_token(user_id: str, email: str, now: int | None = None) -> str:
    """A signed token for the user, valid for JWT_TTL_SECONDS from ``now``."""
    settings = get_settings()
    issued_at = int(time.time()) if now is None else now
    claims = {
        "sub": user_id,
        "email": email,
        "iss": settings.jwt_issuer,
        "iat": issued_at,
        "exp": issued_at + settings.jwt_ttl_seconds,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_token(token: str) -> Caller:
    """The caller a token names; Unauthorized if it is malformed, forged, expired, from
    another issuer, or signed with anything but HS256 (including "none")."""
    settings = get_settings()
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            # Pinning the algorithm list is what rejects "none" and algorithm confusion.
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "email", "iss", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("invalid token") from exc
    if not isinstance(claims["sub"], str) or not isinstance(claims["email"], str):
        raise Unauthorized("invalid token")
    return Caller(user_id=claims["sub"], email=claims["email"])


def bearer_token(authorization: str | None) -> str:
    """The token from an ``Authorization: Bearer <token>`` header value."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()
