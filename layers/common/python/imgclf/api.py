"""HTTP plumbing shared by every HTTP function.

Each function defines its routes once on a powertools ``Router``; ``build`` includes that
router in a REST (API Gateway v1) resolver and a Function URL (v2) resolver, both with
validation on, so request and reply types drive the checks and the OpenAPI document.
Typed errors from imgclf.errors become JSON replies here, and only here.

Request bodies are read here too, once for every route: a route that takes a body takes
JSON (``application/json``, UTF-8), and anything else is a 415 or a 400, never a 500. A
route that declares ``security=BEARER`` checks the token before anything else, so a
request without a valid one is a 401 whatever its body or parameters.

A Router included in two resolvers answers ``router.current_event`` from the last one, so
routes never read it: they take the request through typed parameters, ``Request`` or
``Depends`` (as ``CurrentCaller`` does), which come from the resolver handling the event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    LambdaFunctionUrlResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ConnectionError as EndpointUnreachable
from botocore.exceptions import HTTPClientError
from pydantic import BaseModel

from imgclf import errors, tokens
from imgclf.errors import (
    ApiError,
    BadRequest,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
)
from imgclf.tokens import Caller

logger = Logger()
metrics = Metrics()

# OpenAPI: routes that take `Authorization: Bearer <token>` declare security=BEARER.
BEARER = [{"bearer": []}]
_SECURITY_SCHEMES = {"bearer": HTTPBearer(bearerFormat="JWT")}
_CORS = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type"], max_age=600)

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
Resolver = TypeVar("Resolver", bound=ApiGatewayResolver)


class ErrorReply(BaseModel):
    """The body of every error reply."""

    message: str
    error: str


def responses(success: int, *errors: type[ApiError]) -> dict[int, OpenAPIResponse]:
    """A route's OpenAPI responses: its success (typed by the route's return annotation) and
    the errors it may answer (powertools adds 422 itself)."""
    documented: dict[int, OpenAPIResponse] = {success: {"description": HTTPStatus(success).phrase}}
    for error in errors:
        documented[int(error.status)] = {
            "description": (error.__doc__ or error.status.phrase).strip(),
            "content": {"application/json": {"model": ErrorReply}},
        }
    return documented


def current_caller(request: Request) -> Caller:
    """The caller named by the request's bearer token (Unauthorized otherwise)."""
    header = request.headers.get("authorization")  # case-insensitive
    return tokens.verify_token(tokens.bearer_token(header))


CurrentCaller = Annotated[Caller, Depends(current_caller)]
"""A route parameter of this type receives the authenticated caller."""

JSON_BODY_ERRORS: tuple[type[ApiError], ...] = (BadRequest, UnsupportedMediaType)
"""What a route that takes a JSON body may also answer (list them in its ``responses``)."""

NOT_JSON = "request body is not valid JSON"


def json_body(content_type: str | None, body: str | None, base64_encoded: bool) -> Any:
    """A request body parsed as JSON (None when there is none).

    UnsupportedMediaType unless the Content-Type is application/json (or absent);
    BadRequest for a body that is not UTF-8, not JSON, or holds a lone surrogate (which no
    UTF-8 text can carry, and DynamoDB would refuse later).
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ("", content_types.APPLICATION_JSON):
        raise UnsupportedMediaType("Content-Type must be application/json")
    if not body:
        return None
    try:
        raw = base64.b64decode(body, validate=True) if base64_encoded else body.encode()
        parsed = json.loads(raw.decode("utf-8"))
        # A "\ud800" escape parses to a lone surrogate: valid JSON syntax, not valid text.
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (binascii.Error, ValueError, RecursionError):  # UnicodeError is a ValueError
        raise BadRequest(NOT_JSON) from None
    return parsed


class _RequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, after the route's bearer token is checked, with the
    body read by ``json_body``."""

    def handler(self, app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
        if app.context["_route"].security:
            current_caller(app.request)  # Unauthorized before the body is even read
        return super().handler(app, next_middleware)

    def _get_body(self, app: ApiGatewayResolver) -> Any:
        event = app.current_event
        return json_body(event.headers.get("content-type"), event.body, event.is_base64_encoded)


def _json(error: ApiError) -> Response:
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=error.reply(),
    )


def _validation_reply(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    # Never echo "input" back: it may hold a password.
    detail = [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in errors
    ]
    first = detail[0]
    message = f"{'.'.join(first['loc'])}: {first['msg']}"
    return _json(ValidationFailed(message, detail=detail))


UNAVAILABLE = "the data store (DynamoDB or S3) does not answer; retry later"


def _unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc`` comes from an AWS endpoint that does not answer: refused, timed out
    or dropped connections (pynamodb wraps botocore's error as its ``cause``)."""
    for _ in range(8):  # a short chain: causes, contexts
        if exc is None:
            return False
        if isinstance(exc, EndpointUnreachable | HTTPClientError):
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return False


def _unexpected(exc: Exception) -> Response:
    if _unreachable(exc):
        # Not this request's fault, nor a bug: say what is down, and that it may come back.
        logger.error("AWS endpoint unreachable", extra={"error": repr(exc)})
        reply = _json(errors.ServiceUnavailable(UNAVAILABLE))
        reply.headers["Retry-After"] = "5"
        return reply
    logger.exception("unhandled error")
    return _json(ApiError("internal error"))


def _resolver(kind: type[Resolver], router: Router, title: str) -> Resolver:
    resolver = kind(enable_validation=True, cors=_CORS)
    # Powertools runs this middleware first on every route; there is no public way to
    # extend its body parsing or to run a dependency before it. Fail at init, not silently,
    # if a powertools release stops using it.
    if not isinstance(
        getattr(resolver, "_request_validation_middleware", None),
        OpenAPIRequestValidationMiddleware,
    ):
        raise RuntimeError("aws-lambda-powertools no longer validates through the middleware")
    resolver._request_validation_middleware = _RequestValidation()
    resolver.include_router(router)
    resolver.configure_openapi(title=title, security_schemes=_SECURITY_SCHEMES)
    resolver.exception_handler(ApiError)(_json)
    resolver.exception_handler(RequestValidationError)(_validation_reply)
    resolver.exception_handler(NotFoundError)(lambda _: _json(NotFound("no such route")))
    resolver.exception_handler(Exception)(_unexpected)
    return resolver


def build(router: Router, title: str) -> tuple[APIGatewayRestResolver, LambdaHandler]:
    """The REST resolver for ``router`` and a Lambda handler answering both REST (v1)
    and Function URL (v2) events with the same routes."""
    rest = _resolver(APIGatewayRestResolver, router, title)
    function_url = _resolver(LambdaFunctionUrlResolver, router, title)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Function URLs send payload format 2.0; API Gateway REST proxy events carry no version.
        resolver = function_url if event.get("version") == "2.0" else rest
        reply = resolver.resolve(event, context)
        metrics.add_metric(
            name=f"Http{reply['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1
        )
        return reply

    return rest, lambda_handler
