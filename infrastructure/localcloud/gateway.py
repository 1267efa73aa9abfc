"""API Gateway emulation: REST API (v1 proxy events) and Function URLs (v2 events).

Every HTTP request becomes the event API Gateway would send, runs in the function's
sandbox pool, and the proxy reply becomes the HTTP response. Errors answer as API Gateway
does: unknown route 403, failed or malformed reply 502, over the Timeout 504, body over
10 MB 413. The REST gateway also serves one merged /openapi.json and Swagger UI at /docs.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from localcloud.sandbox import FunctionPool, InvokeResult
from localcloud.template import ApiRoute, RestApi

log = logging.getLogger("localcloud.gateway")

MAX_REST_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
MAX_URL_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit (Function URLs)
# How long a request may wait for a free sandbox before it is throttled (API Gateway's
# integration timeout).
SANDBOX_WAIT = 29.0

_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|.*\+json|xml|.*\+xml|x-www-form-urlencoded|javascript))", re.I
)
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_PROXY_REPLY_KEYS = {
    "statusCode",
    "headers",
    "multiValueHeaders",
    "body",
    "isBase64Encoded",
    "cookies",
}


def _json_response(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers or {}, content_type="application/json"
    )


def _request_time(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _is_text(content_type: str | None, body: bytes) -> bool:
    if content_type and not _TEXT_TYPES.match(content_type):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encode_body(
    content_type: str | None, body: bytes, binary_types: tuple[str, ...]
) -> tuple[str | None, bool]:
    if not body:
        return None, False
    binary = any(_media_type_matches(content_type, t) for t in binary_types)
    if not binary and _is_text(content_type, body):
        return body.decode("utf-8"), False
    return base64.b64encode(body).decode("ascii"), True


def _media_type_matches(content_type: str | None, pattern: str) -> bool:
    if not content_type:
        return False
    media = content_type.split(";")[0].strip().lower()
    pattern = pattern.lower().replace("~1", "/")
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return media.startswith(pattern[:-1])
    return media == pattern


def _query(raw_query: str) -> tuple[dict | None, dict | None]:
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(name, []).append(value)
    return single, multi


def _headers(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _raw_path(request: Request) -> str:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        return urlsplit(raw).path or "/"
    return request.path


# ---- routes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern
    names: tuple[str, ...]
    literal_segments: int


def _compile(route: ApiRoute) -> _CompiledRoute:
    parts, names, literals = [], [], 0
    for segment in route.path.strip("/").split("/"):
        if not segment:
            continue
        match = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            literals += 1
        elif match.group(2):
            names.append(match.group(1))
            parts.append(f"(?P<p{len(names) - 1}>.+)")
        else:
            names.append(match.group(1))
            parts.append(f"(?P<p{len(names) - 1}>[^/]+)")
    pattern = re.compile("^/" + "/".join(parts) + "/?$") if parts else re.compile("^/?$")
    return _CompiledRoute(route, pattern, tuple(names), literals)


class RouteTable:
    """The API's resources and methods; matches a request path like API Gateway."""

    def __init__(self, routes: list[ApiRoute]) -> None:
        # More literal segments first: /predictions/{id}/feedback beats /{proxy+}.
        self._routes = sorted(
            (_compile(r) for r in routes),
            key=lambda c: (-c.literal_segments, "{" in c.route.path, -len(c.route.path)),
        )

    def match(self, raw_path: str) -> list[tuple[ApiRoute, dict[str, str]]]:
        """Every route whose resource path matches, with its URL-decoded path parameters."""
        found = []
        for compiled in self._routes:
            match = compiled.pattern.match(raw_path)
            if match is None:
                continue
            values = {name: unquote(match.group(f"p{i}")) for i, name in enumerate(compiled.names)}
            found.append((compiled.route, values))
        if found:
            resource = found[0][0].path
            found = [item for item in found if item[0].path == resource]
        return found


# ---- the REST (v1) gateway ------------------------------------------------------------------


class RestGateway:
    """A WSGI app that serves a template's REST API routes through sandbox pools."""

    def __init__(
        self,
        routes: list[ApiRoute],
        apis: dict[str, RestApi],
        pools: dict[str, FunctionPool],
        *,
        account_id: str,
        title: str = "API",
        max_body: int = MAX_REST_BODY,
    ) -> None:
        self.routes = RouteTable(routes)
        self.apis = apis
        self.pools = pools
        self.account_id = account_id
        self.title = title
        self.max_body = max_body
        self._api_functions = sorted({r.function for r in routes})
        self._openapi: dict | None = None
        self._openapi_lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        except Exception:  # one bad request never takes the gateway down
            log.exception("gateway error")
            response = _json_response(500, {"message": "Internal server error"})
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request."""
        path = _raw_path(request)
        extra = self._local_extras(request, path)
        if extra is not None:
            return extra
        matches = self.routes.match(path)
        if request.method == "OPTIONS" and matches:
            cors = self.apis.get(matches[0][0].api)
            if (
                cors is not None
                and cors.cors is not None
                and not any(route.method == "OPTIONS" for route, _ in matches)
            ):
                return Response(
                    b"", status=200, headers=cors.cors.headers(), content_type="application/json"
                )
        chosen = next((m for m in matches if m[0].method in (request.method, "ANY")), None)
        if chosen is None:
            return _json_response(
                403,
                {"message": "Missing Authentication Token"},
                {"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
            )
        length = request.content_length
        if length is not None and length > self.max_body:
            return _json_response(413, {"message": "Request Too Long"})
        body = request.get_data(cache=False)
        if len(body) > self.max_body:
            return _json_response(413, {"message": "Request Too Long"})
        route, path_parameters = chosen
        api = self.apis.get(route.api) or RestApi(route.api, "Prod", None)
        event = self.event(request, route, path_parameters, body, api)
        result = self.pools[route.function].invoke(event, wait=SANDBOX_WAIT)
        return self.reply(result, event["requestContext"]["requestId"])

    def event(
        self,
        request: Request,
        route: ApiRoute,
        path_parameters: dict[str, str],
        body: bytes,
        api: RestApi,
    ) -> dict:
        """The REST API (v1) Lambda proxy event for a request."""
        now = time.time()
        headers, multi_headers = _headers(request)
        # API Gateway adds these; functions may rely on them.
        for name, value in (
            ("X-Forwarded-For", request.remote_addr or "127.0.0.1"),
            ("X-Forwarded-Port", str(request.environ.get("SERVER_PORT", ""))),
            ("X-Forwarded-Proto", request.scheme),
        ):
            if name not in headers:
                headers[name] = value
                multi_headers[name] = [value]
        query, multi_query = _query(request.query_string.decode("latin-1"))
        encoded_body, is_base64 = _encode_body(request.content_type, body, api.binary_media_types)
        path = unquote(_raw_path(request))
        request_id = str(uuid.uuid4())
        api_id = _api_id(api.logical_id)
        return {
            "body": encoded_body,
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "isBase64Encoded": is_base64,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "requestContext": {
                "accountId": self.account_id,
                "resourceId": _resource_id(route.path),
                "stage": api.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": _request_time(now),
                "requestTimeEpoch": int(now * 1000),
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "accessKey": None,
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": request.headers.get("User-Agent"),
                    "user": None,
                },
                "path": f"/{api.stage}{path}",
                "resourcePath": route.path,
                "httpMethod": request.method,
                "apiId": api_id,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0].split(":")[0],
            },
        }

    @staticmethod
    def reply(result: InvokeResult, request_id: str) -> Response:
        """The HTTP response for a function's result."""
        ids = {"x-amzn-RequestId": request_id}
        if result.timed_out:
            return _json_response(504, {"message": "Endpoint request timed out"}, ids)
        if not result.ok and result.error_type == "TooManyRequestsException":
            return _json_response(429, {"message": "Too Many Requests"}, ids)
        if not result.ok:
            log.warning("function error: %s: %s", result.error_type, result.error_message)
            return _json_response(502, {"message": "Internal server error"}, ids)
        response = proxy_response(result.payload)
        if response is None:
            log.warning("malformed Lambda proxy response: %r", result.payload)
            return _json_response(502, {"message": "Internal server error"}, ids)
        response.headers.update(ids)
        return response

    # ---- /openapi.json and /docs --------------------------------------------------------

    def _local_extras(self, request: Request, path: str) -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return None
        if path == "/openapi.json" and not self.routes.match(path):
            return _json_response(200, self.openapi(request.host_url.rstrip("/")))
        if path in ("/docs", "/docs/") and not self.routes.match(path):
            return Response(_SWAGGER_HTML, content_type="text/html; charset=utf-8")
        asset = _SWAGGER_ASSETS.get(path)
        if asset is not None:
            content_type = "text/css" if path.endswith(".css") else "application/javascript"
            return Response(asset.read_bytes(), content_type=content_type)
        return None

    def openapi(self, server_url: str) -> dict:
        """One OpenAPI document merged from every API function's resolver."""
        with self._openapi_lock:
            if self._openapi is None:
                documents = []
                complete = True
                for function in self._api_functions:
                    result = self.pools[function].openapi()
                    if result.ok:
                        documents.append(result.payload)
                    else:
                        complete = False
                        log.warning("%s: no OpenAPI schema: %s", function, result.error_message)
                merged = merge_openapi(documents, self.title)
                if not complete:
                    return {**merged, "servers": [{"url": server_url}]}
                self._openapi = merged
            return {**self._openapi, "servers": [{"url": server_url}]}


def merge_openapi(documents: list[dict], title: str) -> dict:
    """Merge several OpenAPI documents (paths, components, tags) into one."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": {},
        "components": {},
    }
    tags: dict[str, dict] = {}
    for document in documents:
        if document.get("openapi"):
            merged["openapi"] = document["openapi"]
        for path, operations in (document.get("paths") or {}).items():
            merged["paths"].setdefault(path, {}).update(operations)
        for section, entries in (document.get("components") or {}).items():
            merged["components"].setdefault(section, {}).update(entries)
        for tag in document.get("tags") or []:
            tags[tag["name"] if isinstance(tag, dict) else tag] = (
                tag if isinstance(tag, dict) else {"name": tag}
            )
        for key in ("security",):
            if key in document and key not in merged:
                merged[key] = document[key]
    if tags:
        merged["tags"] = list(tags.values())
    if not merged["components"]:
        del merged["components"]
    return merged


def proxy_response(payload: Any) -> Response | None:
    """The HTTP response for a Lambda proxy reply, or None when the reply is malformed."""
    if not isinstance(payload, dict) or not set(payload) <= _PROXY_REPLY_KEYS:
        return None
    status = payload.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, (int, str)):
        return None
    try:
        status = int(status)
    except ValueError:
        return None
    if not 100 <= status <= 599:
        return None
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return None
    headers = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(headers, dict) or not isinstance(multi, dict):
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if isinstance(value, (dict, list)):
            return None
        if name.lower() not in _HOP_BY_HOP and name not in multi:
            pairs.append((name, _header_value(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            return None
        if name.lower() not in _HOP_BY_HOP:
            pairs.extend((name, _header_value(v)) for v in values)
    for cookie in payload.get("cookies") or []:
        pairs.append(("Set-Cookie", str(cookie)))
    raw = b""
    if body:
        if payload.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return None
        else:
            raw = body.encode("utf-8")
    response = Response(raw, status=status)
    response.headers.clear()
    for name, value in pairs:
        response.headers.add(name, value)
    if "Content-Type" not in response.headers:
        response.headers["Content-Type"] = "application/json"
    return response


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _api_id(logical_id: str) -> str:
    return f"local{logical_id.lower()}"[:10]


def _resource_id(path: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, path).hex[:6]


# ---- Function URLs (v2) ----------------------------------------------------------------------


class FunctionUrl:
    """A WSGI app serving one function's URL with payload format 2.0 events."""

    def __init__(
        self, pool: FunctionPool, *, account_id: str, max_body: int = MAX_URL_BODY
    ) -> None:
        self.pool = pool
        self.account_id = account_id
        self.max_body = max_body

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        except Exception:
            log.exception("function URL error")
            response = _json_response(500, {"message": "Internal Server Error"})
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request."""
        length = request.content_length
        if length is not None and length > self.max_body:
            return _json_response(413, {"message": "Request Entity Too Large"})
        body = request.get_data(cache=False)
        if len(body) > self.max_body:
            return _json_response(413, {"message": "Request Entity Too Large"})
        event = self.event(request, body)
        result = self.pool.invoke(event, wait=SANDBOX_WAIT)
        ids = {"x-amzn-RequestId": event["requestContext"]["requestId"]}
        if result.timed_out:
            return _json_response(504, {"message": "Endpoint request timed out"}, ids)
        if not result.ok and result.error_type == "TooManyRequestsException":
            return _json_response(429, {"message": "Too Many Requests"}, ids)
        if not result.ok:
            return _json_response(502, {"message": "Internal Server Error"}, ids)
        payload = result.payload
        if isinstance(payload, dict) and "statusCode" in payload:
            response = proxy_response(payload)
            if response is None:
                return _json_response(502, {"message": "Internal Server Error"}, ids)
        else:
            # Function URLs treat any other reply as a 200 JSON body.
            text = payload if isinstance(payload, str) else json.dumps(payload)
            response = Response(text, status=200, content_type="application/json")
        response.headers.update(ids)
        return response

    def event(self, request: Request, body: bytes) -> dict:
        """The payload format 2.0 event for a request."""
        now = time.time()
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers.items():
            key = name.lower()
            if key == "cookie":
                cookies.extend(part.strip() for part in value.split(";") if part.strip())
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        raw_query = request.query_string.decode("latin-1")
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        encoded_body, is_base64 = _encode_body(request.content_type, body, ())
        request_id = str(uuid.uuid4())
        path = unquote(_raw_path(request))
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": "localurl",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0].split(":")[0],
                "http": {
                    "method": request.method,
                    "path": path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": request_id,
                "routeKey": "$default",
                "stage": "$default",
                "time": _request_time(now),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": is_base64,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if encoded_body is not None:
            event["body"] = encoded_body
        return event


# ---- servers -----------------------------------------------------------------------------


class HttpServer:
    """A threaded werkzeug server in a background thread (one thread per request)."""

    def __init__(self, app: Callable, host: str, port: int) -> None:
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_port
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, kwargs={"poll_interval": 0.2}
        )

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HttpServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def _swagger_assets() -> dict[str, Path]:
    # Powertools ships Swagger UI's files: no CDN, so /docs works offline.
    try:
        from aws_lambda_powertools.event_handler.openapi import swagger_ui
    except ImportError:
        return {}
    folder = Path(swagger_ui.__file__).parent
    return {
        "/docs/swagger-ui.css": folder / "swagger-ui.min.css",
        "/docs/swagger-ui-bundle.js": folder / "swagger-ui-bundle.min.js",
    }


_SWAGGER_ASSETS = _swagger_assets()
_SWAGGER_HTML = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>imgclf API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 persistAuthorization: true});
  </script>
</body>
</html>
"""
