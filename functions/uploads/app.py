"""POST /uploads: a pending prediction and a pre-signed S3 POST for its image."""

from aws_lambda_powertools.event_handler.api_gateway import Router
from imgclf import api, storage, uploads
from imgclf.errors import PayloadTooLarge, Unauthorized
from imgclf.tables import PredictionRecord, connect

# SDK clients are made at init (tables.connect).
connect(PredictionRecord)
storage.client()

router = Router()


@router.post(
    "/uploads",
    status_code=201,
    summary="Start an upload",
    tags=["uploads"],
    security=api.BEARER,
    responses=api.responses(201, *api.JSON_BODY_ERRORS, Unauthorized, PayloadTooLarge),
)
def create_upload(request: uploads.UploadRequest, caller: api.CurrentCaller) -> uploads.UploadReply:
    """Create a pending prediction; the client then POSTs the image to ``upload.url``."""
    return uploads.create_upload(caller.user_id, request)


app, lambda_handler = api.build(router, title="imgclf uploads")
