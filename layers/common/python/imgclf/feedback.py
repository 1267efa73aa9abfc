"""Feedback on a prediction: was it right, and if not, what is in the picture; and a
user's feedback back, joined with the predictions, as the labels to retrain on."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from imgclf import labels, predictions
from imgclf.cursors import newest_first
from imgclf.errors import Conflict, NotFound
from imgclf.tables import EXPIRED, PENDING, FeedbackRecord, PredictionRecord


def _known_label(label: str | None) -> str | None:
    if label is not None and not labels.is_class_name(label):
        raise ValueError("label must be one of the 1,000 ImageNet class names")
    return label


ClassName = Annotated[
    str,
    AfterValidator(_known_label),
    # Two names occur twice among the 1,000 classes; the enum lists each once.
    WithJsonSchema({"type": "string", "enum": sorted(set(labels.CLASS_NAMES))}),
]


class FeedbackRequest(BaseModel):
    """POST /predictions/{id}/feedback body."""

    model_config = ConfigDict(strict=True)

    correct: bool
    label: ClassName | None = Field(
        default=None, description="the right ImageNet class name, when the prediction was wrong"
    )
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
    NotFound for an unknown id or another user's, Conflict while it is pending (there is
    no result to judge yet) or once it expired."""
    try:
        prediction = PredictionRecord.get(prediction_id)
    except PredictionRecord.DoesNotExist:
        raise NotFound("prediction not found") from None
    if prediction.user_id != user_id:
        raise NotFound("prediction not found")
    if prediction.status == EXPIRED:
        raise Conflict(f"prediction expired: {predictions.EXPIRED_REASON}")
    if prediction.status == PENDING:
        raise Conflict("prediction is still pending: send feedback once it has a result")
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


class FeedbackItem(BaseModel):
    """One of the caller's feedback, with the prediction it is about (null fields when that
    prediction is gone)."""

    prediction_id: str
    object_key: str | None = Field(description="the image's key in the upload bucket")
    filename: str | None
    predicted_label: str | None = Field(description="the model's top-1 label")
    correct: bool
    label: str | None = Field(description="the right label, when the prediction was wrong")
    comment: str | None
    created_at: str = Field(description="when the feedback was (last) sent")


class FeedbackPage(BaseModel):
    """A page of the caller's feedback, newest first; pass next_cursor for the next."""

    items: list[FeedbackItem]
    next_cursor: str | None


def _predictions(user_id: str, ids: list[str]) -> dict[str, PredictionRecord]:
    """The caller's predictions among ``ids``, in one BatchGetItem per 100 ids."""
    found = PredictionRecord.batch_get(ids) if ids else ()
    # Feedback is only ever stored on one's own predictions; checked again all the same.
    return {record.id: record for record in found if record.user_id == user_id}


def _item(feedback: FeedbackRecord, prediction: PredictionRecord | None) -> FeedbackItem:
    result = prediction.result if prediction and prediction.result else {}
    return FeedbackItem(
        prediction_id=feedback.prediction_id,
        object_key=prediction.object_key if prediction else None,
        filename=prediction.filename if prediction else None,
        predicted_label=result.get("label"),
        correct=feedback.correct,
        label=feedback.label,
        comment=feedback.comment,
        created_at=feedback.created_at,
    )


def list_feedback(user_id: str, limit: int, cursor: str | None = None) -> FeedbackPage:
    """Up to ``limit`` of the caller's feedback, newest first, after ``cursor``, each joined
    with its prediction (image key, file name, predicted label)."""
    page, next_cursor = newest_first(
        FeedbackRecord.by_user, "prediction_id", user_id, limit, cursor
    )
    predictions = _predictions(user_id, [record.prediction_id for record in page])
    return FeedbackPage(
        items=[_item(record, predictions.get(record.prediction_id)) for record in page],
        next_cursor=next_cursor,
    )
