"""Rate limits are shared by every web worker: the production shape (real
gunicorn with two worker processes, Redis from Debian on loopback as the
limit store, as `make serve-prod` runs them) holds the login limit of 10
failed attempts a minute in total, whichever worker answers each attempt.
Counted per worker, as before, two workers allowed 20. The verify API's limit,
counted ahead in leases (kernel.web.ratelimit), holds the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import requests

from kernel.production import Production
from kernel.settings import ROOT

LIMIT = 10
VERIFY_LIMIT = 400


def answering_pids(log_path, path: str = "/login") -> list[int]:
    """The worker pid of every POST to `path` in gunicorn's access log
    (format `%(p)s %(m)s %(U)s %(s)s`, where %(p)s is `<pid>`)."""
    pids = []
    for line in log_path.read_text().splitlines():
        match = re.match(rf"<(\d+)> POST {re.escape(path)} (\d+)", line)
        if match:
            pids.append(int(match.group(1)))
    return pids


@pytest.fixture
def production(tmp_path, anvil_url):
    access_log = tmp_path / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTEST_RATE_LIMIT", "ATTEST_QUEUE"))}
    env.update(ATTEST_DATA_DIR=str(tmp_path / "data"), ATTEST_RPC_URL=anvil_url, ATTEST_SECRET_KEY="shared-secret",
               ATTEST_LOGIN_RATE_LIMIT=f"{LIMIT} per minute", ATTEST_VERIFY_RATE_LIMIT=f"{VERIFY_LIMIT} per minute",
               GUNICORN_CMD_ARGS=f"--access-logfile {access_log} --access-logformat '%(p)s %(m)s %(U)s %(s)s'")
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "users", "create", "--email", "reg@uni.edu",
                    "--password", "correct-horse-1"], cwd=ROOT, env=env, check=True, capture_output=True)
    # Sync workers, one request each at a time, and a new connection per attempt:
    # the two processes take turns accepting, as behind a load balancer.
    prod = Production(port=0, web_workers=2, threads=1, job_workers=0, services=[], quiet=True, env=env).start()
    try:
        assert prod.env["ATTEST_RATE_LIMIT_STORAGE"].startswith("redis://127.0.0.1:")
        yield prod, access_log
    finally:
        prod.stop()


def attempt(client: requests.Session, url: str, password: str) -> int:
    page = client.get(f"{url}/login", headers={"Connection": "close"}, timeout=10)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text).group(1)
    answer = client.post(f"{url}/login", data={"email": "reg@uni.edu", "password": password, "csrf_token": token},
                         headers={"Connection": "close"}, allow_redirects=False, timeout=10)
    return answer.status_code


def test_the_login_limit_holds_across_two_gunicorn_workers(production):
    prod, access_log = production
    client = requests.Session()
    answers = [attempt(client, prod.url, f"wrong-{i}") for i in range(LIMIT)]
    assert answers == [200] * LIMIT, "ten failed attempts are answered (the form again, with its message)"
    # The eleventh within the minute is refused, even with the right password.
    assert attempt(client, prod.url, "correct-horse-1") == 429
    assert attempt(client, prod.url, "wrong-again") == 429
    time.sleep(0.5)  # gunicorn writes its access log line after the response
    pids = answering_pids(access_log)
    assert len(pids) == LIMIT + 2
    assert len(set(pids)) == 2, f"both workers answered attempts (pids {pids}): the count is theirs together"


def test_the_verify_api_limit_holds_across_two_gunicorn_workers(production):
    """Each worker counts the API's requests ahead in leases of up to a
    sixteenth of what the address has left: together they never admit more
    than the limit, and refuse at most a few requests early."""
    prod, access_log = production
    url = f"{prod.url}/api/v1/credentials/verify"
    codes = []
    with requests.Session() as client:
        for _ in range(VERIFY_LIMIT + 100):
            # Not a credential: a 400, counted all the same. A new connection each, as from many clients
            # behind one address, so that both workers take turns.
            codes.append(client.post(url, data=b"{}", headers={"Connection": "close",
                                                               "Content-Type": "application/json"},
                                     timeout=10).status_code)
    assert set(codes) <= {400, 429}, set(codes)
    answered = codes.count(400)
    assert answered <= VERIFY_LIMIT, f"{answered} admitted against a limit of {VERIFY_LIMIT}"
    assert answered >= VERIFY_LIMIT - VERIFY_LIMIT // 16, f"only {answered} of {VERIFY_LIMIT} admitted"
    assert codes[-20:] == [429] * 20, "past the limit every request is refused"
    time.sleep(0.5)
    pids = answering_pids(access_log, "/api/v1/credentials/verify")
    assert len(pids) == len(codes) and len(set(pids)) == 2, "both workers answered"
