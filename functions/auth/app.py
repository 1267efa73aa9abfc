"""POST /auth/login: email and password in, a bearer token out."""

from aws_lambda_powertools.event_handler.api_gateway import Router
from imgclf import api, users
from imgclf.errors import Unauthorized
from imgclf.tables import UserRecord, connect

# SDK clients are made at init (tables.connect).
connect(UserRecord)

router = Router()


@router.post(
    "/auth/login",
    summary="Log in",
    tags=["auth"],
    responses=api.responses(200, *api.JSON_BODY_ERRORS, Unauthorized),
)
def login(request: users.LoginRequest) -> users.TokenReply:
    """A bearer token for valid credentials; 401 otherwise."""
    return users.login(request)


app, lambda_handler = api.build(router, title="imgclf auth")
