"""Small WSGI apps that tests serve under the production gunicorn command."""

from __future__ import annotations

import os
import time


def slow_app(environ, start_response):
    """Answers every request after 5 ms of work, with the worker's pid."""
    environ["wsgi.input"].read()
    time.sleep(0.005)
    body = f"pid {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def busy_app(environ, start_response):
    """Answers every request after about 5 ms of Python work (holding the
    GIL, as a verification does), with the worker's pid."""
    environ["wsgi.input"].read()
    end = time.perf_counter() + 0.005
    while time.perf_counter() < end:
        sum(range(200))
    body = f"pid {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
