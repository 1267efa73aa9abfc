"""Typed errors: domain code raises them, imgclf.api turns them into JSON replies.

Every error reply has the same shape: ``{"message": "...", "error": "<code>"}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ApiError(Exception):
    """An error the caller should see, with its HTTP status and a stable error code."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def reply(self) -> dict[str, Any]:
        """The JSON body of the HTTP reply."""
        return {"message": self.message, "error": self.code, **self.details}


class BadRequest(ApiError):
    """The request is malformed (a body that is not JSON, an invalid cursor) or asks for
    something we do not do."""

    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class Unauthorized(ApiError):
    """Missing, malformed, expired or forged credentials."""

    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class NotFound(ApiError):
    """No such resource for this caller (another user's resource is not found either)."""

    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class Conflict(ApiError):
    """The resource is not in a state that takes this request (e.g. feedback on a
    prediction that has no result)."""

    status = HTTPStatus.CONFLICT
    code = "conflict"


class PayloadTooLarge(ApiError):
    """An upload (announced or read) is larger than the configured limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """The request body is not of a Content-Type the route takes (application/json)."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class ValidationFailed(ApiError):
    """The request body or parameters do not match the declared types."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "validation_error"


class ServiceUnavailable(ApiError):
    """A service the API stores its data in (DynamoDB, S3) does not answer; try again later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
