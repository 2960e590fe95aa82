"""The Flask extensions, made here (not in app.py) so blueprints can import
them without importing the app factory."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


class _Limiter(Limiter):
    def reset(self) -> None:
        """Clear every count, and this process's leases of the API's limit
        (kernel.web.ratelimit), which count ahead against the store."""
        super().reset()
        from kernel.web.ratelimit import LEASES

        LEASES.clear()


csrf = CSRFProtect()
# The storage is set per app from Settings.limiter_storage_uri (Redis in
# production, so every worker counts against the same limit).
limiter = _Limiter(key_func=get_remote_address, default_limits=[])
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see that page."
login_manager.login_message_category = "info"
