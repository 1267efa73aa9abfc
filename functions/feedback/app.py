"""POST /predictions/{id}/feedback: the caller's verdict on a prediction; GET /feedback: the
caller's feedback, newest first, joined with the predictions (a manifest to retrain on)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from imgclf import api, feedback
from imgclf.errors import BadRequest, Conflict, NotFound, Unauthorized
from imgclf.tables import FeedbackRecord, PredictionRecord, connect

# SDK clients are made at init (tables.connect).
connect(FeedbackRecord, PredictionRecord)

router = Router()


@router.post(
    "/predictions/<id>/feedback",
    status_code=201,
    summary="Send feedback",
    tags=["feedback"],
    security=api.BEARER,
    responses=api.responses(201, *api.JSON_BODY_ERRORS, Unauthorized, NotFound, Conflict),
)
def send_feedback(
    caller: api.CurrentCaller,
    id: Annotated[str, Path(min_length=1, max_length=64)],
    request: feedback.FeedbackRequest,
) -> feedback.FeedbackView:
    """Store feedback on a finished prediction (409 while pending or once expired); a
    second submission replaces the first."""
    return feedback.submit_feedback(caller.user_id, id, request)


@router.get(
    "/feedback",
    summary="List my feedback",
    tags=["feedback"],
    security=api.BEARER,
    responses=api.responses(200, BadRequest, Unauthorized),
)
def list_feedback(
    caller: api.CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> feedback.FeedbackPage:
    """The caller's feedback, newest first, with each prediction's image key, file name and
    predicted label; follow ``next_cursor`` for more."""
    return feedback.list_feedback(caller.user_id, limit, cursor)


app, lambda_handler = api.build(router, title="imgclf feedback")
