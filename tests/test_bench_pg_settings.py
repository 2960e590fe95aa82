"""bench_issue_engines' `--pg-setting NAME=VALUE`: the setting reaches a real
PostgreSQL server started by tests.servers.PostgresServer, and a malformed
one is refused before any server starts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from bench.bench_issue_engines import _setting
from tests.servers import PostgresServer


def test_a_server_setting_reaches_the_postgresql_server():
    # Not under pytest's base temp: see tests/fixtures_databases.py (the postgres user must enter it).
    folder = Path(tempfile.mkdtemp(prefix="attest-test-pg-settings-"))
    server = PostgresServer(folder, durable=True, settings=dict([_setting("autovacuum=off"),
                                                                  _setting("work_mem=8MB")]))
    try:
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SHOW autovacuum").fetchone()[0] == "off"
            assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB"
            assert conn.execute("SHOW fsync").fetchone()[0] == "on", "durable: the benchmark's server syncs"
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_default_server_has_postgresql_s_own_autovacuum():
    folder = Path(tempfile.mkdtemp(prefix="attest-test-pg-settings-"))
    server = PostgresServer(folder)
    try:
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SHOW autovacuum").fetchone()[0] == "on"
            assert conn.execute("SHOW fsync").fetchone()[0] == "off", "the tests' server does not sync"
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("text", ["autovacuum", "=off", "autovacuum=", "work_mem=8 MB", "a;b=1", "x=1 -c y=2", "a=$(id)", "a='1'"])
def test_a_malformed_setting_is_refused_with_its_shape(text):
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        _setting(text)
