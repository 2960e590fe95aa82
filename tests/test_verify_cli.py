"""`credentials verify` and `credentials validate` on the command line: exit
codes, stdin, and junk that must end in exit 2 and a sentence, never a traceback."""

from __future__ import annotations

import json

import pytest

from credentials.verification import CHECK_IDS
from tests.helpers_credentials import open_world, trust_world


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)


@pytest.fixture
def runner(app, world):
    trust_world(app, world)
    return app.test_cli_runner()


def run(runner, *args, input=None):
    return runner.invoke(args=["credentials", *args], input=input)


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_verify_valid_exits_0_with_the_design_json(runner, world, tmp_path):
    path = write(tmp_path, "c.json", json.dumps(world.good).encode())
    result = run(runner, "verify", path, "--rpc-url", world.rpc_url)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["valid"] is True and body["verdict"] == "genuine"
    # The design's ids keep their order; data_integrity and status_list join them.
    assert [c["id"] for c in body["checks"]] == ["format", "integrity", "merkle_proof", "anchor", "signature",
                                                 "data_integrity", "issuer_identity", "issuer_authorized",
                                                 "revocation", "status_list", "valid_from",
                                                 "valid_until"] == list(CHECK_IDS)
    assert body["issuer"]["name"] == "University of Testing" and body["issuer"]["domain"] == "uni.example.edu"
    assert all(set(c) >= {"id", "status", "message"} for c in body["checks"])


def test_verify_reads_stdin(runner, world):
    result = run(runner, "verify", "-", "--rpc-url", world.rpc_url, input=json.dumps(world.cases["expired"][0]))
    assert result.exit_code == 1
    assert {c["id"]: c["status"] for c in json.loads(result.stdout)["checks"]}["valid_until"] == "failed"


def test_verify_uses_the_apps_rpc_url_by_default(runner, world, tmp_path):
    # The app fixture points ATTEST_RPC_URL at the same session node.
    path = write(tmp_path, "c.json", json.dumps(world.good).encode())
    assert run(runner, "verify", path).exit_code == 0


JUNK = {
    "not_json": (b"this is not json", "not JSON"),
    "array": (b"[1, 2]", "found a JSON array"),
    "number": (b"42", "found a JSON number"),
    "empty": (b"", "empty"),
    "binary": (bytes(range(256)) * 4, "binary"),
    "latin1": ("{\"name\": \"Zoë\"}".encode("latin-1"), "not UTF-8"),
    "deep": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "deep_objects": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
    "huge_int": (b'{"type": ' + b"9" * 100_000 + b"}", "not usable JSON"),
    "duplicate_keys": (b'{"type": "A", "type": "B"}', "twice"),
    "unrelated_object": (b'{"name": "a shopping list"}', "not a verifiable credential"),
}


@pytest.mark.parametrize("command", ["verify", "validate"])
@pytest.mark.parametrize("case", list(JUNK))
def test_junk_exits_2_with_a_sentence(runner, world, tmp_path, command, case):
    data, words = JUNK[case]
    path = write(tmp_path, "junk.json", data)
    extra = ["--rpc-url", world.rpc_url] if command == "verify" else []
    result = run(runner, command, path, *extra)
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["verify", "validate"])
def test_a_50_mb_file_exits_2_quickly(runner, world, tmp_path, command):
    path = tmp_path / "big.json"
    with open(path, "wb") as fh:
        fh.write(b'{"a": "' + b"x" * (50 * 1024 * 1024) + b'"}')
    result = run(runner, command, str(path))
    assert result.exit_code == 2
    assert "at most 1,048,576 bytes" in result.stderr


def test_missing_file_and_directory_exit_2(runner, tmp_path):
    assert run(runner, "verify", str(tmp_path / "nope.json")).exit_code == 2
    assert run(runner, "validate", str(tmp_path)).exit_code == 2


def test_verify_junk_also_prints_json_for_machines(runner, tmp_path):
    result = run(runner, "verify", write(tmp_path, "j.json", b"[]"))
    body = json.loads(result.stdout)
    assert body == {"valid": False, "error": body["error"], "checks": []}


def test_validate_conforming_exits_0(runner, world, tmp_path):
    result = run(runner, "validate", write(tmp_path, "c.json", json.dumps(world.good).encode()))
    assert result.exit_code == 0 and result.stdout.startswith("conforming")


def test_validate_prints_each_reason_and_exits_1(runner, world, tmp_path):
    doc = dict(world.good)
    doc["@context"] = list(reversed(doc["@context"]))
    doc["validUntil"] = "next Tuesday"
    doc.pop("credentialSubject")
    result = run(runner, "validate", write(tmp_path, "c.json", json.dumps(doc).encode()))
    assert result.exit_code == 1
    assert "$['@context'][0]: expected https://www.w3.org/ns/credentials/v2" in result.stdout
    assert "$.validUntil: expected an RFC 3339 date-time" in result.stdout
    assert "$.credentialSubject: expected an object with claims about the subject, found nothing" in result.stdout
    as_json = json.loads(run(runner, "validate", "--json", write(tmp_path, "d.json", json.dumps(doc).encode())).stdout)
    assert as_json["conforming"] is False and len(as_json["problems"]) >= 3
