"""The API does what its OpenAPI document says, checked by schemathesis (PyPI)
in a bounded, deterministic run against the real app and a real chain: bodies
that fit the published schema are answered (200, or 503 with the same body
when the chain cannot be reached), bodies that break it are refused with a 400
naming the JSON path, methods not served are a 405 whose Allow header is true,
and every answer matches its declared schema and content type.

This is how the faults were found: schemathesis sent a body breaking the
schema and got 200 `valid:false`, and OPTIONS listed methods the API does not
serve."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from app import create_app
from kernel.web.extensions import limiter
from tests.helpers_credentials import open_world, trust_world

EXAMPLES = 40  # per operation and generation mode: bounded, about 15 s here


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)


@pytest.fixture(scope="module")
def conforming_app(tmp_path_factory, anvil_url, world, module_database_url):
    app = create_app({"TESTING": True, "data_dir": tmp_path_factory.mktemp("api-conformance"),
                      "database_url": module_database_url, "rpc_url": anvil_url, "SECRET_KEY": "test-secret"})
    app.config["VERIFY_RPC_URL"] = world.rpc_url
    app.config["VERIFY_RATE_LIMIT"] = "1000000/minute"
    trust_world(app, world)
    limiter.reset()
    yield app
    registry = app.extensions.pop("attest.registry", None)
    if registry is not None:
        registry.close()


@pytest.fixture(scope="module")
def api_schema(conforming_app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", conforming_app)
    schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE,
                                           schemathesis.GenerationMode.NEGATIVE],
                                    max_examples=EXAMPLES, deterministic=True, database="none")
    return schema


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# The document's GET takes no input, so it has no negative cases.
RUNS = [("POST", "/api/v1/credentials/verify", POSITIVE), ("POST", "/api/v1/credentials/verify", NEGATIVE),
        ("GET", "/api/v1/openapi.json", POSITIVE)]


# schemathesis's own pytest plugin (`from_fixture`) does not run on pytest 9, so
# each operation's strategy is drawn here with hypothesis, as the plugin would.
@pytest.mark.parametrize("method, path, mode", RUNS, ids=lambda v: str(v))
def test_the_api_does_what_its_openapi_document_says(api_schema, method, path, mode):
    operation = api_schema[path][method]
    seen = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        response = case.call_and_validate()
        seen.append(response.status_code)

    conforms()
    assert seen, "schemathesis generated cases"
    if mode is NEGATIVE:
        assert 400 in seen, "bodies breaking the schema were refused"


def test_a_body_breaking_the_schema_is_a_400_naming_the_path(conforming_app, world):
    client = conforming_app.test_client()
    good = client.post("/api/v1/credentials/verify", json=world.good)
    assert good.status_code == 200 and good.get_json()["valid"] is True
    broken = dict(world.good, issuer=5, credentialSubject="Ada")
    refused = client.post("/api/v1/credentials/verify", json=broken)
    assert refused.status_code == 400
    body = refused.get_json()
    assert {p["path"] for p in body["errors"]} == {"$.issuer", "$.credentialSubject"}
    assert "$.issuer" in body["error"] and "openapi.json" in body["error"]
    # Inside the schema, a wrong value is judged by the checks: 200, not valid.
    tampered = dict(world.good, validFrom="not a date")
    judged = client.post("/api/v1/credentials/verify", json=tampered)
    assert judged.status_code == 200 and judged.get_json()["valid"] is False


def test_options_lists_only_the_methods_served(conforming_app):
    client = conforming_app.test_client()
    verify = client.options("/api/v1/credentials/verify")
    assert verify.status_code == 204 and verify.headers["Allow"] == "POST, OPTIONS"
    document = client.options("/api/v1/openapi.json")
    assert document.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/api/v1/nothing-here").status_code == 404
    put = client.put("/api/v1/credentials/verify", json={})
    assert put.status_code == 405 and put.headers["Allow"] == "POST" and put.is_json
