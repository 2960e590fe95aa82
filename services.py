"""Long-lived things the web layer shares within one process: the chain
client, opened on first use and closed at exit."""

from __future__ import annotations

import atexit
import threading

from flask import Flask, current_app

from credentials.chain import Registry, open_registry

_lock = threading.Lock()


def get_registry(app: Flask | None = None) -> Registry:
    app = app or current_app._get_current_object()
    registry = app.extensions.get("attest.registry")
    if registry is not None:
        return registry
    with _lock:
        registry = app.extensions.get("attest.registry")
        if registry is None:
            registry = open_registry(app.extensions["attest.settings"])
            app.extensions["attest.registry"] = registry
            atexit.register(registry.close)
    return registry
