"""Opaque page cursors: the key a page ended at, as URL-safe base64 JSON.

A cursor only carries where a list stopped; the owner always comes from the caller's
token, so a cursor can never reach into another user's list.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from pydantic import BaseModel, ValidationError

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
