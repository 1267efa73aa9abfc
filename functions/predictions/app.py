"""GET /predictions, GET /predictions/{id} (?wait=N long-polls), GET /health (with the
upload limits)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from imgclf import api, health, predictions, storage
from imgclf.errors import BadRequest, NotFound, Unauthorized
from imgclf.tables import PredictionRecord, connect

# SDK clients are made at init (tables.connect).
connect(PredictionRecord)
storage.client()

router = Router()


@router.get(
    "/predictions",
    summary="List my predictions",
    tags=["predictions"],
    security=api.BEARER,
    responses=api.responses(200, BadRequest, Unauthorized),
)
def list_predictions(
    caller: api.CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> predictions.PredictionPage:
    """The caller's predictions, newest first; follow ``next_cursor`` for more."""
    return predictions.list_predictions(caller.user_id, limit, cursor)


@router.get(
    "/predictions/<id>",
    summary="Get a prediction",
    tags=["predictions"],
    security=api.BEARER,
    responses=api.responses(200, Unauthorized, NotFound),
)
def get_prediction(
    caller: api.CurrentCaller,
    id: Annotated[str, Path(min_length=1, max_length=64)],
    wait: Annotated[int, Query(ge=0, le=predictions.MAX_WAIT_SECONDS)] = 0,
) -> predictions.PredictionView:
    """The caller's prediction; with ``wait`` > 0, wait up to that many seconds for it to
    leave ``pending``."""
    return predictions.get_prediction(caller.user_id, id, wait)


@router.get("/health", summary="Health", tags=["health"])
def get_health() -> health.Health:
    """Liveness, whether the Redis cache answers (the API works without it), and the
    upload limits (largest size, accepted types) for clients to show and check."""
    return health.check_health()


app, lambda_handler = api.build(router, title="imgclf predictions")
