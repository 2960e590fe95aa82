"""The web plumbing every face shares: extensions (CSRF, rate limits, login),
the login blueprint and the security headers."""
