"""The baselines bench_verify runs beside Attest under the same gunicorn shape:
what the framework alone costs on this machine, per request.

    flask_app  a Flask view that answers POST /api/v1/credentials/verify with a fixed JSON
    wsgi_app   a bare WSGI callable that does the same
"""

from __future__ import annotations

from flask import Flask

ANSWER = b'{"valid": true, "verdict": "genuine"}'

flask_app = Flask(__name__)


@flask_app.post("/api/v1/credentials/verify")
def verify():
    return flask_app.response_class(ANSWER, mimetype="application/json")


def wsgi_app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]
