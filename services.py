"""Long-lived things the web layer shares within one process, each made on
first use under one lock: the chain client (closed at exit) and the
verifier's read-only chain reader."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app

from credentials.chain import Registry, open_registry
from credentials.reader import ChainReader

_lock = threading.RLock()  # re-entrant: making the reader may open the registry
T = TypeVar("T")


def _shared(app: Flask | None, key: str, make: Callable[[Flask], T]) -> T:
    app = app or current_app._get_current_object()
    value = app.extensions.get(key)
    if value is None:
        with _lock:
            value = app.extensions.get(key)
            if value is None:
                value = app.extensions[key] = make(app)
    return value


def _open_registry(app: Flask) -> Registry:
    registry = open_registry(app.extensions["attest.settings"])
    atexit.register(registry.close)
    return registry


def get_registry(app: Flask | None = None) -> Registry:
    return _shared(app, "attest.registry", _open_registry)


def _open_reader(app: Flask) -> ChainReader:
    settings = app.extensions["attest.settings"]
    # Without a URL of its own, it reads the node the app's registry uses
    # (the embedded node's, when ATTEST_RPC_URL is unset).
    url = app.config.get("VERIFY_RPC_URL") or settings.rpc_url or get_registry(app).rpc_url
    return ChainReader(url, finality_depth=settings.confirmations)


def get_chain_reader(app: Flask | None = None) -> ChainReader:
    """The process's read-only chain client. Shared: it caches only facts that
    cannot change, so every request and thread may use it."""
    return _shared(app, "attest.chain_reader", _open_reader)
