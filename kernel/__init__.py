"""The shared kernel: what the credentials and plagiarism domains both stand on.

- `settings`  every setting, read once from the environment
- `database`  SQLAlchemy engine, sessions and ordered, recorded migrations
- `accounts`  people who log in: roles, scrypt passwords, session versions
- `audit`     the append-only audit log (who did what, when)
- `jobs`      durable jobs with typed stages, leases and heartbeats, on Huey
- `web`       the Flask plumbing: extensions, login, security headers
- `cli`, `serve`  the `users` and `jobs` command groups, and `flask serve`

Nothing here imports a domain package.
"""
