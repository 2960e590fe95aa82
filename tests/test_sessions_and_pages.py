"""Sessions and pages locked down, each fault reproduced the way it was found:
a session cookie saved before logout and replayed after it, a password changed
while a session is open, the demo accounts' passwords, the security headers on
every route in the url_map, Secure cookies under https, and the modes of the
files under the data dir."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from werkzeug.routing import BaseConverter

from app import create_app
from kernel.serve import seed_demo_users
from kernel.web.security import HEADERS
from tests.fixtures_plagiarism import COPIED, INDEPENDENT_A

# A page may set a stricter value than the default (the headers are set with
# setdefault): the holder's pages, whose URL is their secret, send no Referer.
STRICTER = {"Referrer-Policy": {"no-referrer"}}


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'type="hidden" name="csrf_token" value="([^"]+)"', html)
    return found.group(1)


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "a logged-in client holds a session cookie"
    return cookie.value


def log_in(client, email: str, password: str):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def secure_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def make_registrar(runner, email="reg@uni.edu", password="password-reg-1"):
    result = runner.invoke(args=["users", "create", "--email", email, "--password", password,
                                 "--role", "registrar"])
    assert result.exit_code == 0, result.output
    return email, password


def replay(app, cookie: str):
    """A new client that carries nothing but the saved cookie, as an attacker would."""
    stranger = app.test_client()
    stranger.set_cookie("session", cookie)
    return stranger


def test_a_cookie_saved_before_logout_opens_nothing_after_it(secure_app, runner):
    email, password = make_registrar(runner)
    client = secure_app.test_client()
    assert log_in(client, email, password).status_code == 302
    saved = session_cookie(client)
    assert replay(secure_app, saved).get("/registrar/").status_code == 200, "the copy works while logged in"

    page = client.get("/registrar/").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_token(page)}).status_code == 302

    after = replay(secure_app, saved).get("/registrar/")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    # Logging in again gives a new session; the old cookie still opens nothing.
    assert log_in(client, email, password).status_code == 302
    assert client.get("/registrar/").status_code == 200
    assert replay(secure_app, saved).get("/registrar/").status_code == 302


def test_logout_needs_a_post_with_a_csrf_token(secure_app, runner):
    email, password = make_registrar(runner)
    client = secure_app.test_client()
    log_in(client, email, password)
    assert client.get("/logout").status_code == 405  # a link or an <img> cannot log anyone out
    assert client.post("/logout").status_code == 400  # nor a cross-site form without the token
    assert client.get("/registrar/").status_code == 200


def test_a_password_change_ends_every_open_session(secure_app, runner):
    email, password = make_registrar(runner)
    first, second = secure_app.test_client(), secure_app.test_client()
    log_in(first, email, password)
    log_in(second, email, password)
    assert first.get("/registrar/").status_code == 200 and second.get("/registrar/").status_code == 200

    changed = runner.invoke(args=["users", "set-password", "--email", email, "--password", "a-new-password-2"])
    assert changed.exit_code == 0 and "sessions are ended" in changed.output
    for client in (first, second):
        assert client.get("/registrar/").status_code == 302
    assert log_in(secure_app.test_client(), email, password).status_code == 200  # the old password is refused
    assert log_in(secure_app.test_client(), email, "a-new-password-2").status_code == 302


def test_each_demo_account_has_its_own_password(app):
    app.config["WTF_CSRF_ENABLED"] = False
    logins = dict(seed_demo_users(app))
    registrar, instructor = logins["registrar@example.edu"], logins["instructor@example.edu"]
    assert registrar != instructor
    client = app.test_client()
    # The instructor's password does not open the registrar's account.
    refused = client.post("/login", data={"email": "registrar@example.edu", "password": instructor})
    assert refused.status_code == 200 and b"do not match" in refused.data
    assert client.get("/registrar/").status_code == 302
    own = client.post("/login", data={"email": "instructor@example.edu", "password": instructor})
    assert own.status_code == 302
    assert client.get("/registrar/").status_code == 403, "an instructor is not a registrar"
    logins_file = app.extensions["attest.settings"].keys_dir / "demo-logins"
    assert stat.S_IMODE(logins_file.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- headers on every route

def _sample(converter: BaseConverter, name: str) -> str:
    kind = type(converter).__name__
    if kind == "IntegerConverter":
        return "1"
    if kind == "PathConverter":
        return "a/b.txt"
    return "x" if "id" not in name else "00000000-0000-0000-0000-000000000000"


def every_route(app):
    for rule in app.url_map.iter_rules():
        values = {name: _sample(conv, name) for name, conv in rule._converters.items()}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.rule, method, path


def test_security_headers_on_every_route_in_the_url_map(app, runner):
    """Every rule, every method, anonymous and logged in: whatever answers (a
    page, a redirect, a 404, a 405, a 400 for a missing CSRF token, a static
    file), the headers are there."""
    email, password = make_registrar(runner)
    app.config["WTF_CSRF_ENABLED"] = True
    anonymous = app.test_client()
    registrar = app.test_client()
    assert log_in(registrar, email, password).status_code == 302
    routes = list(every_route(app))
    assert len(routes) > 40, "the url_map is the whole app"
    statuses = set()
    for client in (anonymous, registrar):
        for rule, method, path in routes:
            if rule == "/logout":
                continue  # would end the logged-in client's session mid-loop; covered below
            response = client.open(path, method=method)
            statuses.add(response.status_code)
            for name, value in HEADERS.items():
                allowed = {value} | STRICTER.get(name, set())
                assert response.headers.get(name) in allowed, f"{method} {rule} ({response.status_code}): {name}"
            assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"].split("script-src", 1)[1] \
                .split(";", 1)[0]
    assert {200, 302}.issubset(statuses) and statuses & {400, 404, 405}
    goodbye = registrar.post("/logout", data={"csrf_token": csrf_token(registrar.get("/registrar/").get_data(
        as_text=True))})
    assert goodbye.status_code == 302 and goodbye.headers["X-Frame-Options"] == "DENY"
    missing = anonymous.get("/no/such/page")
    assert missing.status_code == 404 and missing.headers["Content-Security-Policy"]


def test_no_page_carries_an_inline_script(app, runner):
    email, password = make_registrar(runner)
    app.config["WTF_CSRF_ENABLED"] = True
    registrar = app.test_client()
    log_in(registrar, email, password)
    checked = 0
    for rule, method, path in every_route(app):
        if method != "GET" or rule.startswith("/static"):
            continue
        response = registrar.get(path)
        if response.mimetype != "text/html":
            continue
        html = response.get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{rule}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{rule}: an inline event handler"
        checked += 1
    assert checked >= 10


def test_session_cookies_are_secure_when_the_public_address_is_https(tmp_path, anvil_url):
    def login_cookie(public_url: str) -> str:
        app = create_app({"TESTING": True, "data_dir": tmp_path / public_url.split(":")[0], "rpc_url": anvil_url,
                          "public_url": public_url, "SECRET_KEY": "test-secret"})
        app.config["WTF_CSRF_ENABLED"] = False
        app.test_cli_runner().invoke(args=["users", "create", "--email", "s@uni.edu", "--password", "password-1",
                                           "--role", "registrar"])
        response = app.test_client().post("/login", data={"email": "s@uni.edu", "password": "password-1"})
        assert response.status_code == 302
        return "; ".join(response.headers.getlist("Set-Cookie"))

    over_https = login_cookie("https://registrar.example.edu")
    assert "session=" in over_https and "Secure" in over_https and "HttpOnly" in over_https
    assert "SameSite=Lax" in over_https
    over_http = login_cookie("http://127.0.0.1:5000")
    assert "session=" in over_http and "Secure" not in over_http  # a development machine without TLS


# --------------------------------------------------------------------------- files under the data dir

def test_files_holding_personal_data_are_private(app, runner, worker, tmp_path):
    """After a batch and an indexed upload, nothing under the data dir is open to
    other users of the machine: directories 0700, the database and the keys 0600,
    and no file or directory readable by group or others."""
    folder = tmp_path / "essays"
    folder.mkdir()
    (folder / "amy_reefs.txt").write_text(COPIED)
    (folder / "cal_reefs.txt").write_text(INDEPENDENT_A)
    added = runner.invoke(args=["submissions", "add", "BIO1", "reefs", str(folder)])
    assert added.exit_code == 0, added.output
    csv = tmp_path / "grads.csv"
    csv.write_text("recipient_name,recipient_email,achievement_name,achievement_type,description,awarded_on,"
                   "valid_until,grade\nAda Lovelace,ada@example.edu,BSc Mathematics,Degree,Three years,2026-06-30,,"
                   "First\n")
    issued = runner.invoke(args=["credentials", "issue", str(csv), "--out", str(tmp_path / "out")])
    assert issued.exit_code == 0, issued.output

    data_dir = Path(app.extensions["attest.settings"].data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    if app.extensions["attest.settings"].sqlite_path is not None:  # on PostgreSQL no database file is here
        db = data_dir / "attest.db"
        assert db.exists() and stat.S_IMODE(db.stat().st_mode) == 0o600
    index = data_dir / "index"
    assert index.is_dir() and stat.S_IMODE(index.stat().st_mode) == 0o700
    seen = 0
    loose = []
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink():
                continue
            seen += 1
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                loose.append(f"{path.relative_to(data_dir)} {oct(mode)}")
    assert seen > 5 and not loose, loose
    assert json.loads(added.stdout)["added"]
