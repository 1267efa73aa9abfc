"""Feedback on a prediction: was it right, and if not, what is in the picture."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from imgclf import labels
from imgclf.errors import NotFound
from imgclf.tables import FeedbackRecord, PredictionRecord


def _known_label(label: str | None) -> str | None:
    if label is not None and not labels.is_class_name(label):
        raise ValueError("label must be one of the 1,000 ImageNet class names")
    return label


class FeedbackRequest(BaseModel):
    """POST /predictions/{id}/feedback body."""

    model_config = ConfigDict(strict=True)

    correct: bool
    label: Annotated[str | None, Field(max_length=100), AfterValidator(_known_label)] = None
    comment: Annotated[str | None, Field(max_length=1000)] = None


class FeedbackView(BaseModel):
    """The caller's stored feedback on a prediction."""

    prediction_id: str
    correct: bool
    label: str | None
    comment: str | None
    created_at: str


def submit_feedback(user_id: str, prediction_id: str, request: FeedbackRequest) -> FeedbackView:
    """Store the caller's feedback on their prediction, replacing any earlier one;
    NotFound for an unknown id or another user's."""
    try:
        prediction = PredictionRecord.get(prediction_id)
    except PredictionRecord.DoesNotExist:
        raise NotFound("prediction not found") from None
    if prediction.user_id != user_id:
        raise NotFound("prediction not found")
    record = FeedbackRecord(
        prediction_id=prediction_id,
        user_id=user_id,
        correct=request.correct,
        label=request.label,
        comment=request.comment,
    )
    # One feedback per user and prediction: a put on the same key replaces the last one.
    record.save()
    return FeedbackView(
        prediction_id=record.prediction_id,
        correct=record.correct,
        label=record.label,
        comment=record.comment,
        created_at=record.created_at,
    )
