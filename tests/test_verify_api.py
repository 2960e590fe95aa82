"""The JSON API's edges: envelopes, bad input, size and rate limits, JSON
errors, the OpenAPI file, CSRF, and a fuzz test that never sees a 500."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import validate as validate_schema
from openapi_spec_validator import validate as validate_openapi

from kernel.web.extensions import limiter
from tests.helpers_credentials import open_world, trust_world

URL = "/api/v1/credentials/verify"


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)


@pytest.fixture
def api(app, world):
    app.config["VERIFY_RPC_URL"] = world.rpc_url
    trust_world(app, world)
    app.config["VERIFY_RATE_LIMIT"] = "100000/minute"
    limiter.reset()
    return app.test_client()


def test_raw_and_enveloped_credential_give_the_same_answer(api, world):
    raw = api.post(URL, json=world.good).get_json()
    wrapped = api.post(URL, json={"credential": world.good}).get_json()
    assert raw["valid"] is wrapped["valid"] is True
    assert [c["status"] for c in raw["checks"]] == [c["status"] for c in wrapped["checks"]]
    assert raw["credential"]["holder"] == "Ada Lovelace"


@pytest.mark.parametrize("body, words", [
    (b"", "empty"),
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "found a JSON array"),
    (b'"a string"', "found a JSON string"),
    (b"\x00\x01\x02\xff\xfe binary", "binary"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "nested too deeply"),
    (b'{"type": 1, "type": 2}', "twice"),
    (b'{"credential": 5}', "\"credential\" to hold a JSON object"),
    (b'{"hello": "world"}', "not a verifiable credential"),
    (b'{"@context": NaN}', "NaN"),
])
def test_bad_input_is_a_400_with_a_message(api, body, words):
    response = api.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json
    assert words in response.get_json()["error"]


def test_a_50_mb_body_is_refused_with_413(api):
    response = api.post(URL, data=b" " * (50 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 413 and response.is_json
    assert "larger than" in response.get_json()["error"]


def test_a_credential_that_is_not_valid_is_still_a_200(api, world):
    body = api.post(URL, json=world.cases["revoked"][0]).get_json()
    assert body["valid"] is False
    assert {c["id"]: c["status"] for c in body["checks"]}["revocation"] == "failed"


def test_unknown_paths_and_methods_answer_json(api):
    missing = api.get("/api/v1/nothing/here")
    assert missing.status_code == 404 and missing.is_json
    wrong = api.get(URL)
    assert wrong.status_code == 405 and wrong.is_json and wrong.headers["Allow"] == "POST"
    put = api.put(URL, json={})
    assert put.status_code == 405


def test_openapi_document_is_served_and_describes_verify(api):
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    operation = spec["paths"]["/api/v1/credentials/verify"]["post"]
    assert {"200", "400", "413", "429"} <= set(operation["responses"])
    check_ids = spec["components"]["schemas"]["Check"]["properties"]["id"]["enum"]
    assert check_ids[0] == "format" and check_ids[-1] == "valid_until"
    validate_openapi(spec)  # a well-formed OpenAPI 3.1 document


def test_answers_match_the_openapi_schema(api, world):
    spec = api.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/credentials/verify"]["post"]
    ok_schema = dict(operation["responses"]["200"]["content"]["application/json"]["schema"],
                     components=spec["components"])
    error_schema = dict(operation["responses"]["400"]["content"]["application/json"]["schema"],
                        components=spec["components"])
    for doc in (world.good, world.cases["tampered_subject"][0]):
        validate_schema(api.post(URL, json=doc).get_json(), ok_schema)
    for body in (b"[", b'{"@context": []}'):  # not JSON; not the request schema's shape
        validate_schema(api.post(URL, data=body).get_json(), error_schema)


def test_rate_limit_per_address_is_a_json_429(app, world):
    app.config["VERIFY_RPC_URL"] = world.rpc_url
    app.config["VERIFY_RATE_LIMIT"] = "3/minute"
    limiter.reset()
    client = app.test_client()
    codes = [client.post(URL, json=world.good).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    other = client.post(URL, json=world.good, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200  # another address has its own allowance
    limited = client.post(URL, json=world.good)
    assert limited.is_json and "Retry-After" in limited.headers


def test_api_needs_no_csrf_token_but_the_page_does(app, world):
    app.config.update(VERIFY_RPC_URL=world.rpc_url, WTF_CSRF_ENABLED=True)
    limiter.reset()
    client = app.test_client()
    assert client.post(URL, json=world.good).status_code == 200
    page = client.post("/verify", data={"credential_json": json.dumps(world.good)})
    assert page.status_code == 400 and b"data-check" not in page.data


# ----- fuzz -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
PATHS = [("proof",), ("proof", "anchor"), ("proof", "anchor", "merklePath"), ("proof", "anchor", "chainId"),
         ("proof", "anchor", "registry"), ("proof", "signature"), ("proof", "fingerprint"), ("issuer",),
         ("issuer", "id"), ("credentialSubject",), ("credentialSubject", "achievement"), ("validFrom",),
         ("validUntil",), ("@context",), ("type",), ("proof", "eip712Domain"), ("proof", "verificationMethod")]


def mutate(doc: dict, path: tuple[str, ...], value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(st.sampled_from(PATHS), json_values).map(lambda pv: ("mutate", pv)),
))
def test_fuzzed_bodies_never_cause_a_500(api, world, body):
    if isinstance(body, tuple):
        path, value = body[1]
        body = json.dumps(mutate(world.good, path, value)).encode()
    response = api.post(URL, data=body, content_type="application/json")
    assert response.status_code in (200, 400), (response.status_code, body[:200])
    payload = response.get_json()
    if response.status_code == 200:
        assert [c["id"] for c in payload["checks"]][0] == "format"
        assert all(c["status"] in ("passed", "failed", "skipped") for c in payload["checks"])
    else:
        assert payload["error"]


_any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_schema_check_agrees_with_the_python_validator(world, data):
    """schema_problems answers [] from jsonschema-rs alone: it must accept
    exactly what the Python validator (whose messages a refusal shows) accepts,
    on an issued credential with members replaced, removed or added."""
    from credentials.web.api import _credential_validator, _fast_credential_validator

    doc = copy.deepcopy(world.good)
    for _ in range(data.draw(st.integers(0, 3))):
        target = doc
        while isinstance(target, (dict, list)) and target and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
            if not isinstance(target[key], (dict, list)):
                break
            target = target[key]
        if isinstance(target, dict):
            key = data.draw(st.sampled_from(sorted(target) + ["added"]))
            if data.draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = data.draw(_any_json)
        elif isinstance(target, list) and target:
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(_any_json)
    python_ok = not any(True for _ in _credential_validator().iter_errors(doc))
    assert _fast_credential_validator().is_valid(doc) == python_ok


def test_the_fast_path_answers_exactly_as_the_flask_view(api, app, world):
    """VerifyFastPath (WSGI, before Flask) and the Flask view behind it give the
    same status, JSON and headers, for every kind of answer; the limit counts both."""
    from werkzeug.test import Client

    from credentials.web.api import VerifyFastPath

    assert isinstance(app.wsgi_app, VerifyFastPath)
    flask_only = Client(lambda environ, start_response: app.wsgi_app.wsgi_app(environ, start_response))
    bodies = [json.dumps(world.good).encode(), json.dumps({"credential": world.good}).encode(),
              json.dumps(world.cases["revoked"][0]).encode(), json.dumps(world.cases["tampered_subject"][0]).encode(),
              b"not json", b'{"@context": []}', b"x" * 300_000, b""]
    for body in bodies:
        fast = api.post(URL, data=body, content_type="application/json")
        slow = flask_only.post(URL, data=body, content_type="application/json")
        assert fast.status_code == slow.status_code, body[:60]
        fast_json, slow_json = fast.get_json(), slow.get_json()
        for answer in (fast_json, slow_json):
            for check in answer.get("checks", []):
                if check["id"] == "revocation":
                    # "as of block N" or "asked just now": whether the event-fed view had caught up.
                    check["message"] = check["message"].split(":")[0]
        assert fast_json == slow_json, body[:60]
        wanted = {k: v for k, v in slow.headers.items() if k not in ("Content-Length", "Vary")}
        got = dict(fast.headers.items())
        assert {k: got.get(k) for k in wanted if k != "X-RateLimit-Remaining"} == \
            {k: v for k, v in wanted.items() if k != "X-RateLimit-Remaining"}, body[:60]
        assert int(got["X-RateLimit-Remaining"]) == int(wanted["X-RateLimit-Remaining"]) + 1  # counted in turn
    app.config["VERIFY_RATE_LIMIT"] = "2/minute"
    assert api.post(URL, data=bodies[0], content_type="application/json").status_code == 200
    assert flask_only.post(URL, data=bodies[0], content_type="application/json").status_code == 200
    refused = flask_only.post(URL, data=bodies[0], content_type="application/json")
    assert refused.status_code == 429 and refused.get_json()["status"] == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert api.post(URL, data=bodies[0], content_type="application/json").status_code == 429


def test_several_limits_each_count(app, world):
    """ATTEST_VERIFY_RATE_LIMIT may hold several limits, as Flask-Limiter's do: the tightest refuses."""
    app.config.update(VERIFY_RPC_URL=world.rpc_url, VERIFY_RATE_LIMIT="100/minute;2/hour")
    limiter.reset()
    client = app.test_client()
    answers = [client.post(URL, json=world.good) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["X-RateLimit-Limit"] == "2" and answers[1].headers["X-RateLimit-Remaining"] == "0"
    assert "2 per 3600 seconds" in answers[2].get_json()["error"]


@pytest.mark.parametrize("path", [("credentialSubject", "name"), ("issuer", "id"), ("type",), ("validFrom",)])
def test_a_lone_surrogate_in_the_credential_is_a_400(api, world, path):
    """JSON may spell a lone surrogate (\\ud800), which UTF-8 cannot carry:
    wherever it is, a 400 that says so (a message quoting it was a 500)."""
    body = json.dumps(mutate(world.good, path, "x\ud800y")).encode()
    assert b"\\ud800" in body
    response = api.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400, response.data[:300]
    assert "lone surrogate" in json.loads(response.data.decode("utf-8"))["error"]


def test_an_answer_that_quotes_a_lone_surrogate_is_still_json():
    """The API's writer: orjson refuses a lone surrogate, the fallback
    escapes it, and the result is JSON in ASCII that reads back the same."""
    from credentials.web.api import json_bytes

    body = {"error": "x\ud800y", "status": 400, "checks": [{"message": "é 李"}]}
    data = json_bytes(body)
    assert data.isascii() and json.loads(data) == body
    assert json_bytes({"a": "é"}) == '{"a":"é"}'.encode()


def test_a_number_beyond_a_double_is_a_400(api, world):
    """1e400 reads as infinity, which JSON cannot say and JCS refuses: a 400
    that says so, wherever the number is (here in the Data Integrity proof)."""
    doc = copy.deepcopy(world.good)
    proofs = doc["proof"] if isinstance(doc["proof"], list) else [doc["proof"]]
    proofs[0]["expires"] = "@@number@@"
    body = json.dumps(doc).replace('"@@number@@"', "1e400").encode()
    response = api.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "beyond what JSON numbers can carry" in response.get_json()["error"]
