"""HTTP plumbing shared by every HTTP function.

Each function defines its routes once on a powertools ``Router``; ``build`` includes that
router in a REST (API Gateway v1) resolver and a Function URL (v2) resolver, both with
validation on, so request and reply types drive the checks and the OpenAPI document.
Typed errors from imgclf.errors become JSON replies here, and only here.

A Router included in two resolvers answers ``router.current_event`` from the last one, so
routes never read it: they take the request through typed parameters, ``Request`` or
``Depends`` (as ``CurrentCaller`` does), which come from the resolver handling the event.
"""

from __future__ import annotations

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
from imgclf.errors import ApiError, BadRequest, NotFound, ValidationFailed
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


def _json(error: ApiError) -> Response:
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=error.reply(),
    )


def _validation_reply(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return _json(BadRequest("request body is not valid JSON"))
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
