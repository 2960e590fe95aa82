"""The application shell: pages, login, CSRF, users CLI, the demo seed."""

from __future__ import annotations

import re
import stat

from sqlalchemy import select

from app import create_app
from kernel.accounts import User
from kernel.audit import AuditEntry
from kernel.serve import seed_demo_users


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_home_page(client):
    page = client.get("/")
    assert page.status_code == 200
    assert b"Academic credentials anyone can verify" in page.data


def test_users_create_and_login(app, runner):
    result = runner.invoke(args=["users", "create", "--email", "Reg@Uni.edu", "--password", "s3cret-pass",
                                 "--role", "registrar"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    duplicate = runner.invoke(args=["users", "create", "--email", "reg@uni.edu", "--password", "another-1",
                                    "--role", "registrar"])
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output
    short = runner.invoke(args=["users", "create", "--email", "x@uni.edu", "--password", "short"])
    assert short.exit_code == 1 and "at least 8" in short.output

    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = csrf_token(form)
    bad = client.post("/login", data={"email": "reg@uni.edu", "password": "wrong", "csrf_token": token})
    assert "do not match" in bad.get_data(as_text=True)
    good = client.post("/login", data={"email": "reg@uni.edu", "password": "s3cret-pass", "csrf_token": token})
    assert good.status_code == 302
    with app.extensions["attest.db"].session() as s:
        user = s.scalar(select(User).where(User.email == "reg@uni.edu"))
        assert user.password_hash != "s3cret-pass" and user.password_hash.startswith("scrypt:")
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions[-2:] == ["login_failed", "login"]


def test_login_without_csrf_token_is_refused(app, runner):
    runner.invoke(args=["users", "create", "--email", "a@uni.edu", "--password", "password-1"])
    app.config["WTF_CSRF_ENABLED"] = True
    response = app.test_client().post("/login", data={"email": "a@uni.edu", "password": "password-1"})
    assert response.status_code == 400 or b"CSRF" in response.data
    assert response.status_code != 302


def test_login_never_redirects_off_site(app, runner):
    runner.invoke(args=["users", "create", "--email", "b@uni.edu", "--password", "password-1"])
    app.config["WTF_CSRF_ENABLED"] = False
    response = app.test_client().post("/login?next=https://evil.example/x",
                                      data={"email": "b@uni.edu", "password": "password-1"})
    assert response.status_code == 302 and "evil.example" not in response.headers["Location"]


def test_session_secret_is_generated_private(tmp_path, anvil_url):
    app = create_app({"TESTING": True, "data_dir": tmp_path / "d", "rpc_url": anvil_url})
    secret_file = tmp_path / "d" / "keys" / "session.secret"
    assert app.config["SECRET_KEY"] == secret_file.read_text().strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_demo_seed_only_on_empty_database(app):
    logins = seed_demo_users(app)
    assert [e for e, _ in logins] == ["registrar@example.edu", "instructor@example.edu"]
    password = logins[0][1]
    assert len(password) >= 12
    again = seed_demo_users(app)
    assert again == logins  # same accounts, same password, nothing created twice
    with app.extensions["attest.db"].session() as s:
        assert len(s.scalars(select(User)).all()) == 2


def test_migrations_are_recorded_and_not_rerun(tmp_path, anvil_url):
    data = tmp_path / "m"
    first = create_app({"TESTING": True, "data_dir": data, "rpc_url": anvil_url})
    assert first.extensions["attest.db"].migrate() == []
    second = create_app({"TESTING": True, "data_dir": data, "rpc_url": anvil_url})
    assert second.extensions["attest.db"].migrate() == []


def test_failed_logins_are_rate_limited_per_account(app, runner):
    runner.invoke(args=["users", "create", "--email", "limited@uni.edu", "--password", "password-1"])
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    answers = [client.post("/login", data={"email": "limited@uni.edu", "password": f"guess-{i}"}).status_code
               for i in range(11)]
    assert answers[:10] == [200] * 10 and answers[10] == 429
    blocked = client.post("/login", data={"email": "limited@uni.edu", "password": "password-1"})
    assert blocked.status_code == 429 and b"Wait a minute" in blocked.data
    # Another account from the same address is not locked out by it.
    runner.invoke(args=["users", "create", "--email", "other@uni.edu", "--password", "password-1"])
    ok = client.post("/login", data={"email": "other@uni.edu", "password": "password-1"})
    assert ok.status_code == 302
