"""Users: creating them, logging in, the local demo user.

Command line (with the functions' environment set, e.g. AWS_ENDPOINT_URL for the local cloud):

    python -m imgclf.users add EMAIL     # prompts for the password, or reads it from stdin
    python -m imgclf.users demo          # admin@example.com / admin, for local clouds only
"""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pynamodb.exceptions import PutError

from imgclf import passwords, tokens
from imgclf.errors import BadRequest, Unauthorized
from imgclf.settings import get_settings
from imgclf.tables import UserRecord

logger = Logger(child=True)

DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "admin"

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^\S+@\S+$"),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class LoginRequest(BaseModel):
    """POST /auth/login body."""

    model_config = ConfigDict(strict=True)

    email: Email
    password: Password


class TokenReply(BaseModel):
    """A bearer token and how long it lives."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds")


def add_user(email: str, password: str) -> UserRecord:
    """Create a user; BadRequest if the email is taken."""
    record = UserRecord(
        email=email.strip().lower(),
        user_id=uuid.uuid4().hex,
        password_hash=passwords.hash_password(password),
    )
    try:
        record.save(condition=UserRecord.email.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise BadRequest(f"user {record.email} already exists") from exc
        raise
    return record


def login(request: LoginRequest) -> TokenReply:
    """A token for valid credentials; the same Unauthorized for an unknown email and a
    wrong password, after the same amount of hashing work."""
    try:
        user = UserRecord.get(request.email)
    except UserRecord.DoesNotExist:
        passwords.verify_password(passwords.DUMMY_HASH, request.password)
        logger.info("login refused: unknown email", extra={"email": request.email})
        raise Unauthorized("invalid email or password") from None
    if not passwords.verify_password(user.password_hash, request.password):
        logger.info("login refused: wrong password", extra={"email": request.email})
        raise Unauthorized("invalid email or password")
    return TokenReply(
        access_token=tokens.issue_token(user.user_id, user.email),
        expires_in=get_settings().jwt_ttl_seconds,
    )


def ensure_demo_user() -> UserRecord:
    """The demo user admin@example.com / admin, created if missing.

    Only local provisioning calls this; nothing in AWS does.
    """
    try:
        return UserRecord.get(DEMO_EMAIL)
    except UserRecord.DoesNotExist:
        return add_user(DEMO_EMAIL, DEMO_PASSWORD)


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        raise SystemExit("passwords differ")
    return password


def main(argv: list[str] | None = None) -> int:
    """``python -m imgclf.users add EMAIL | demo``."""
    parser = argparse.ArgumentParser(prog="python -m imgclf.users", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user (password from the prompt or stdin)")
    add.add_argument("email")
    commands.add_parser("demo", help=f"create {DEMO_EMAIL} / {DEMO_PASSWORD} if missing")
    args = parser.parse_args(argv)

    if args.command == "demo":
        user = ensure_demo_user()
    else:
        try:
            request = LoginRequest(email=args.email, password=_read_password())
            user = add_user(request.email, request.password)
        except (BadRequest, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"{user.email} {user.user_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
