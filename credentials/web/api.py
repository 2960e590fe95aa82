"""The JSON API: `POST /api/v1/credentials/verify` and its OpenAPI description.

Thin: read the body (bounded), turn it into a credential or a 400 that says
why, run `verify_credential`, answer the same JSON as `credentials verify`.
Every error under /api/v1 is JSON, 404 and 405 included, so scripts never
have to parse an HTML page. CSRF does not apply (no cookies are used to
authorise anything here); a per-address rate limit does, set by
ATTEST_VERIFY_RATE_LIMIT (default 600/minute), counted by
kernel.web.ratelimit at one storage round trip a request.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from credentials.runtime import get_chain_reader, get_status_lists, get_trust_policy
from credentials.validate import MAX_DOCUMENT_BYTES, NotACredential, load_document, text_digest
from credentials.verification import CHECK_IDS, STATUSES, UNKNOWN_NOW, VERDICTS, verify_credential
from kernel.web.extensions import csrf, limiter
from kernel.web.ratelimit import LimitExceeded, count, rate_headers
from kernel.web.ratelimit import enabled as limits_enabled
from kernel.web.security import HEADERS as SECURITY_HEADERS

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(api_bp)
limiter.exempt(api_bp)  # its one limit is counted_answer's (kernel.web.ratelimit)

DEFAULT_RATE_LIMIT = "600/minute"
# The envelope {"credential": …} and white space may add a little to a credential's own limit.
MAX_BODY_BYTES = MAX_DOCUMENT_BYTES + 4096
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
# Our routes and their methods, so an unknown method is a 405, an unknown path a 404.
ROUTES = {"credentials/verify": ("POST",), "openapi.json": ("GET", "HEAD")}
VERIFY_PATH = "/api/v1/credentials/verify"
LIMIT_SCOPE = "api-verify"


def json_bytes(body: dict) -> bytes:
    """The API's JSON: compact UTF-8, by orjson (about a tenth of the
    standard library's time for a verification's answer). What orjson
    refuses, such as a lone surrogate quoted from the document in a
    message, goes to the standard library as \\u escapes, still valid JSON."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":")).encode("ascii")


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return current_app.response_class(json_bytes(body), status=status, mimetype="application/json",
                                      headers=headers)


def error(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"error": message, "status": status}, status, headers)


def rate_limit() -> str:
    return current_app.config.get("VERIFY_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def read_body(environ: dict | None = None, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """At most `limit` bytes of the request's body (the current Flask request's
    unless `environ` is given); None when there are more."""
    environ = request.environ if environ is None else environ
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        declared = -1
    if declared > limit:
        return None
    stream = environ.get("wsgi.input")
    data = stream.read(limit + 1 if declared < 0 else declared) if stream is not None else b""
    return None if len(data) > limit else data


def error_body(status: int, message: str) -> dict:
    return {"error": message, "status": status}


def answer(raw: bytes | None) -> tuple[int, dict, dict]:
    """The API's answer to a request body (None: larger than MAX_BODY_BYTES):
    (status, JSON body, extra headers). In an app context; the rate limit is
    the caller's."""
    if raw is None:
        return 413, error_body(413, f"the request body is larger than {MAX_BODY_BYTES:,} bytes; "
                                    "a credential is a few kilobytes"), {}
    try:
        document = load_document(raw, wrapped_ok=True)
    except NotACredential as exc:
        return 400, error_body(400, f"not a credential: {exc}"), {}
    problems = schema_problems(document)
    if problems:
        # The published schema is the contract: a body that breaks it is refused
        # here, never answered 200 with valid:false.
        return 400, {"error": "not a credential this API can check: " + "; ".join(
            f"{p['path']}: {p['message']}" for p in problems[:3]) + " (see /api/v1/openapi.json)",
            "status": 400, "errors": problems}, {}
    # The digest of the exact text: verifying the same bytes again repeats only what can change.
    result = verify_credential(document, get_chain_reader(), get_trust_policy(), status_lists=get_status_lists(),
                               digest=text_digest(raw))
    if result.verdict == UNKNOWN_NOW:
        # Nothing failed, but the chain or a trust source did not answer: not a
        # verdict on the credential. 503 tells a script to try again later.
        return 503, result.as_dict(), {"Retry-After": "30"}
    return 200, result.as_dict(), {}


def counted_answer(environ: dict) -> tuple[int, dict, dict]:
    """`answer()` for a request, counted against the per-address limit, with
    the X-RateLimit headers; a 429 past the limit. In an app context."""
    try:
        counted = count(LIMIT_SCOPE, rate_limit(), environ.get("REMOTE_ADDR") or "127.0.0.1") \
            if limits_enabled() else None
        status, body, headers = answer(read_body(environ))
        return status, body, ({**headers, **rate_headers(counted)} if counted else headers)
    except LimitExceeded as exc:
        return 429, error_body(429, exc.description), {"Retry-After": str(exc.retry_after)}
    except Exception:
        app = current_app._get_current_object()
        if app.config.get("PROPAGATE_EXCEPTIONS") or app.testing:
            raise
        app.logger.exception("POST %s failed", VERIFY_PATH)
        return 500, error_body(500, "the server could not complete this verification"), {}


@api_bp.post("/credentials/verify", provide_automatic_options=False)
def verify():
    """Verify the credential in the body (raw, or as {"credential": …}). In a
    running app VerifyFastPath answers this route before Flask dispatches it;
    this view gives the same answer to a caller of the Flask app itself."""
    status, body, headers = counted_answer(request.environ)
    return json_response(body, status, headers)


class VerifyFastPath:
    """WSGI middleware: POST /api/v1/credentials/verify answered without
    Flask's request dispatch, the one route busy enough for it to matter.

    Under gunicorn here, a hello-world Flask view costs 563-850 us of CPU a
    request and a bare WSGI callable 362-547 us: the difference is a fifth to
    a third of a verification. The answer is the Flask view's own
    (`counted_answer`), with the same security headers (kernel.web.security);
    every other request goes to Flask."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != VERIFY_PATH:
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            status, body, headers = counted_answer(environ)
        data = json_bytes(body)
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, '')}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                        *SECURITY_HEADERS.items(), *headers.items()])
        return [data]


@lru_cache(maxsize=1)
def openapi_document() -> str:
    """The OpenAPI description, its enums filled from the verifier's own registry
    of checks, statuses and verdicts, so the document cannot drift from the code."""
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    schemas["Check"]["properties"]["id"]["enum"] = list(CHECK_IDS)
    schemas["Check"]["properties"]["status"]["enum"] = list(STATUSES)
    schemas["VerificationResult"]["properties"]["verdict"]["enum"] = list(VERDICTS)
    return json.dumps(document, indent=2, ensure_ascii=False)


@lru_cache(maxsize=1)
def _credential_validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(openapi_document())["components"]["schemas"]["Credential"]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _describe(error) -> str:
    if error.validator == "required":
        return error.message.replace("'", "", 2) if len(error.message) < 120 else "a required member is missing"
    wanted = error.schema.get("type") or " or ".join(
        str(option.get("type")) for option in error.schema.get("anyOf", []))
    if error.validator == "minItems":
        return "must not be empty"
    return f"must be {'an' if str(wanted)[:1] in 'aeiou' else 'a'} {wanted}" if wanted else error.message[:120]


@lru_cache(maxsize=1)
def _fast_credential_validator():
    """The same schema compiled by jsonschema-rs (Rust): a yes/no in about
    15 us where the Python validator takes about 350 us. Only a document it
    refuses goes to the Python validator, for the messages."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(json.loads(openapi_document())["components"]["schemas"]["Credential"])


def schema_problems(document: dict) -> list[dict]:
    """Where the document breaks the request schema: [{path, message}], in path order."""
    if _fast_credential_validator().is_valid(document):
        return []
    found = []
    for err in sorted(_credential_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        found.append({"path": path, "message": _describe(err)})
    return found[:20]


@api_bp.get("/openapi.json", provide_automatic_options=False)
def openapi():
    return current_app.response_class(openapi_document(), mimetype="application/json")


ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


@api_bp.route("/", defaults={"path": ""}, methods=ANY_METHOD, provide_automatic_options=False)
@api_bp.route("/<path:path>", methods=ANY_METHOD, provide_automatic_options=False)
def unknown(path: str):
    """Anything else under /api/v1: a JSON 405 for a known path, else a JSON 404.
    OPTIONS answers only for our routes, and lists only the methods they serve."""
    allowed = ROUTES.get(path.strip("/"))
    if allowed and request.method == "OPTIONS":
        return current_app.response_class(status=204, headers={"Allow": ", ".join((*allowed, "OPTIONS"))})
    if allowed:
        return error(405, f"{request.method} is not allowed on /api/v1/{path}; use {', '.join(allowed)}",
                     {"Allow": ", ".join(allowed)})
    return error(404, f"there is no /api/v1/{path}; see /api/v1/openapi.json")


@api_bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """429 from the rate limit, 413 from the server's own limit, and the rest, as JSON."""
    headers = {}
    if exc.code == 429:
        headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
    return error(exc.code or 500, exc.description or exc.name, headers)
