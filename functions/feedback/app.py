"""POST /predictions/{id}/feedback: the caller's verdict on a prediction."""

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from imgclf import api, feedback
from imgclf.errors import BadRequest, NotFound, Unauthorized

router = Router()


@router.post(
    "/predictions/<id>/feedback",
    status_code=201,
    summary="Send feedback",
    tags=["feedback"],
    security=api.BEARER,
    responses=api.responses(201, BadRequest, Unauthorized, NotFound),
)
def send_feedback(
    caller: api.CurrentCaller,
    id: Annotated[str, Path(min_length=1, max_length=64)],
    request: feedback.FeedbackRequest,
) -> feedback.FeedbackView:
    """Store feedback; a second submission replaces the first."""
    return feedback.submit_feedback(caller.user_id, id, request)


app, lambda_handler = api.build(router, title="imgclf feedback")
