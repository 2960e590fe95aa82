"""Security headers on every response, whatever blueprint (or error handler,
or the static route) made it.

The Content-Security-Policy allows scripts from this origin only: no inline
script anywhere (page behaviour lives in static/*.js), no framing (against
clickjacking: `frame-ancestors 'none'` and X-Frame-Options for old browsers),
no plugins. Inline *styles* stay allowed: pages set progress-bar widths with
style attributes, and a style cannot run code.
"""

from __future__ import annotations

from flask import Flask, Response

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: https:",  # an institution's logo may live on its own site
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask, https: bool) -> None:
    """Headers on every response; cookies marked Secure when the public address is https."""
    app.after_request(add_security_headers)
    app.config.update(SESSION_COOKIE_SECURE=https, REMEMBER_COOKIE_SECURE=https,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
