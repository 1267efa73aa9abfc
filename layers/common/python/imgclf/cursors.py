"""Opaque page cursors: the key a page ended at, as URL-safe base64 JSON, and the one way
a user's list is read page by page.

A cursor only carries where a list stopped; the owner always comes from the caller's
token, so a cursor can never reach into another user's list.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pynamodb.indexes import GlobalSecondaryIndex

from imgclf.errors import BadRequest

Position = TypeVar("Position", bound=BaseModel)


def encode_cursor(position: BaseModel) -> str:
    """The cursor of a page that ended at ``position``."""
    return base64.urlsafe_b64encode(position.model_dump_json().encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: type[Position]) -> Position:
    """The position a cursor names; BadRequest for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return kind.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise BadRequest("invalid cursor") from None


class _Position(BaseModel):
    key: str
    created_at: str


def newest_first(
    index: GlobalSecondaryIndex, key: str, user_id: str, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Up to ``limit`` of a user's records from a ``by-user`` index (user_id, created_at),
    newest first, after ``cursor``; and the cursor of the next page (None on the last).
    ``key`` names the table's hash key, which DynamoDB needs to resume an index query."""
    start = None
    if cursor is not None:
        after = decode_cursor(cursor, _Position)
        start = {
            key: {"S": after.key},
            "user_id": {"S": user_id},
            "created_at": {"S": after.created_at},
        }
    # One extra item tells whether there is a next page, without an empty last page.
    records = list(
        index.query(user_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start)
    )
    page = records[:limit]
    if len(records) <= limit:
        return page, None
    last = page[-1]
    return page, encode_cursor(_Position(key=getattr(last, key), created_at=last.created_at))
