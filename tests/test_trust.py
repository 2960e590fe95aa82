"""Who really issued it, on a real Anvil node with real installations.

- The impostor: a second Attest installation (its own data dir, the default
  settings, so also "Example University" at the same default address) on the
  same chain issues credentials with the real CLI in its own process. The
  genuine installation refuses them in `issuer_identity`, through the CLI, the
  API and the page, while its own credentials pass every check.
- A forgery: a genuine credential copied, re-signed with one's own key and
  anchored in one's own copy of the registry, fails `issuer_identity`.
- A second institution on the trust list passes; removed, it reads "not
  confirmed"; accredited on chain it passes, de-accredited it fails.
- A did:web-only entry is resolved from the other installation's live DID
  document; with that server gone, identity is "could not check now".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from eth_account import Account
from werkzeug.serving import make_server

from app import create_app
from credentials.accreditation import AccreditationRegistry
from credentials.canonical import fingerprint, to_hex
from credentials.chain import open_registry
from credentials.merkle import MerkleTree
from credentials.node import free_port
from credentials.signing import Eip712Domain, Signer
from kernel.settings import ROOT, Settings
from kernel.web.extensions import limiter
from tests.helpers_credentials import anchor_of, issue_stored


def check_of(body: dict, check_id: str) -> dict:
    return next(c for c in body["checks"] if c["id"] == check_id)


DATA = Path(__file__).parent / "data"
FLASK = ROOT / ".venv" / "bin" / "flask"
CHECK_ROW = re.compile(r'data-check="(\w+)" data-status="(\w+)"')


def flask_process(data_dir: Path, rpc_url: str, *args: str, database_url: str | None = None,
                  **env: str) -> subprocess.CompletedProcess:
    """A real `flask --app app …` of an installation living in `data_dir` (and,
    on PostgreSQL, in `database_url`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
    clean.update(ATTEST_DATA_DIR=str(data_dir), ATTEST_RPC_URL=rpc_url, **env)
    if database_url:
        clean["ATTEST_DATABASE_URL"] = database_url
    return subprocess.run([str(FLASK), "--app", "app", *args], cwd=ROOT, env=clean, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def impostor_credentials(tmp_path_factory, anvil_url, postgres_databases) -> list[dict]:
    """Credentials issued by a second installation with the default settings."""
    base = tmp_path_factory.mktemp("impostor")
    database_url = postgres_databases.create()[1] if postgres_databases else None
    proc = flask_process(base / "data", anvil_url, "credentials", "issue", str(DATA / "issue_sample.csv"),
                         "--out", str(base / "out"), database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(p.read_text()) for p in sorted((base / "out").glob("*.json"))]


@pytest.fixture
def genuine(app):
    """The installation under test, with credentials of its own."""
    limiter.reset()
    app.config["VERIFY_RATE_LIMIT"] = "100000/minute"
    return app


def verify_cli(app, doc: dict, tmp_path) -> tuple[int, dict]:
    path = tmp_path / f"c-{abs(hash(json.dumps(doc))) % 10**8}.json"
    path.write_text(json.dumps(doc))
    result = app.test_cli_runner().invoke(args=["credentials", "verify", str(path)])
    return result.exit_code, json.loads(result.stdout)


def verify_page(app, doc: dict) -> str:
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/verify").get_data(as_text=True)).group(1)
    response = client.post("/verify", data={"credential_json": json.dumps(doc), "csrf_token": token})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_impostor_is_refused_on_cli_api_and_page(genuine, impostor_credentials, tmp_path):
    doc = next(d for d in impostor_credentials if "validUntil" not in d)
    # Same name, same DID as the genuine installation: the defaults of both.
    own = issue_stored(genuine, 1)[0]
    assert doc["issuer"]["name"] == own["issuer"]["name"] == "Example University"
    assert doc["issuer"]["id"] == own["issuer"]["id"] == "did:web:127.0.0.1%3A5000"
    signer = anchor_of(doc)["verificationMethod"].split(":")[4].split("#")[0]

    code, body = verify_cli(genuine, doc, tmp_path)
    assert code == 1 and body["valid"] is False and body["verdict"] == "not_confirmed"
    statuses = {c["id"]: c["status"] for c in body["checks"]}
    identity = next(c for c in body["checks"] if c["id"] == "issuer_identity")
    assert identity["status"] == "failed"
    assert identity["message"] == (
        f"The credential calls itself Example University (did:web:127.0.0.1%3A5000), but the key that signed it "
        f"({signer}) is not one Example University lists; do not rely on this credential.")
    # Everything else is true of the impostor's document: it is intact and anchored, in its own registry,
    # and its Data Integrity proof verifies with the impostor's own key. Its status list is not read: only a
    # trusted issuer's key can sign a list worth believing.
    assert {k: v for k, v in statuses.items() if k != "issuer_identity"} == {
        "format": "passed", "integrity": "passed", "merkle_proof": "passed", "anchor": "passed",
        "signature": "passed", "data_integrity": "passed", "issuer_authorized": "passed", "revocation": "passed",
        "status_list": "skipped", "valid_from": "passed", "valid_until": "skipped"}
    assert body["issuer"] is None

    api = genuine.test_client().post("/api/v1/credentials/verify", json=doc)
    assert api.status_code == 200
    assert api.get_json()["verdict"] == "not_confirmed" and api.get_json()["checks"] == body["checks"]

    html = verify_page(genuine, doc)
    assert 'data-verdict="not_confirmed"' in html and "✗ Not confirmed" in html
    assert "The document is intact, but its issuer is not one you trust." in html
    assert "is not one Example University lists" in html
    assert "Genuine" not in html

    # The genuine installation's own credential: every check, and its confirmed domain.
    code, body = verify_cli(genuine, own, tmp_path)
    assert code == 0 and body["verdict"] == "genuine"
    assert body["issuer"] == {"did": "did:web:127.0.0.1%3A5000", "name": "Example University",
                              "domain": "127.0.0.1", "source": "this installation"}
    html = verify_page(genuine, own)
    assert "✓ Genuine" in html and 'id="confirmed-domain">127.0.0.1<' in html


def test_qr_link_of_an_own_credential_is_genuine(genuine):
    own = issue_stored(genuine, 1)[0]
    html = genuine.test_client().get("/v/" + own["id"].removeprefix("urn:uuid:")).get_data(as_text=True)
    assert 'data-verdict="genuine"' in html and "Issued by <strong" in html


def test_a_forgery_on_a_self_deployed_registry_fails_identity(genuine, anvil_url, tmp_path):
    """Copy a genuine credential, deploy one's own registry, authorise one's own key,
    re-sign and anchor: all integrity checks pass, identity does not."""
    forged = issue_stored(genuine, 1)[0]
    forged["credentialSubject"]["achievement"]["name"] = "PhD Computer Science"
    with open_registry(Settings.from_env(data_dir=tmp_path / "forger", rpc_url=anvil_url)) as own_registry:
        del forged["proof"]
        leaf = fingerprint(forged)
        tree = MerkleTree([leaf])
        tx = own_registry.anchor(tree.root, 1)
        signer = Signer(bytes(own_registry.issuer.key))
        from credentials.document import make_proof

        forged["proof"] = make_proof(
            fingerprint=to_hex(leaf), signature=to_hex(signer.sign(leaf, Eip712Domain(own_registry.chain_id,
                                                                                     own_registry.address))),
            signer=signer.address, chain_id=own_registry.chain_id, registry=own_registry.address,
            merkle_root=to_hex(tree.root), merkle_path=[], created="2026-01-01T00:00:00Z",
            transaction_hash=tx.tx_hash)
    code, body = verify_cli(genuine, forged, tmp_path)
    assert code == 1 and body["verdict"] == "not_confirmed"
    failed = [c["id"] for c in body["checks"] if c["status"] == "failed"]
    assert failed == ["issuer_identity"]
    assert "is not one Example University lists" in check_of(body, "issuer_identity")["message"]


@pytest.fixture
def second_institution(tmp_path, anvil_url, db_urls):
    """Another Attest installation, "Northfield College" at its own address,
    with one credential; its own trust entry exported as another would receive it."""
    app = create_app({"TESTING": True, "data_dir": tmp_path / "northfield", "rpc_url": anvil_url,
                      "database_url": db_urls.for_dir(tmp_path / "northfield"),
                      "SECRET_KEY": "x", "public_url": "https://northfield.example", "institution_name":
                      "Northfield College"})
    doc = issue_stored(app, 1)[0]
    exported = app.test_cli_runner().invoke(args=["trust", "export", "--own"])
    assert exported.exit_code == 0, exported.output
    entry_file = tmp_path / "northfield-entry.json"
    entry_file.write_text(exported.stdout)
    yield doc, entry_file, app
    registry = app.extensions.pop("attest.registry", None)
    if registry is not None:
        registry.close()


def test_a_second_institution_on_the_trust_list_passes_and_fails_once_removed(genuine, second_institution,
                                                                              tmp_path):
    doc, entry_file, _ = second_institution
    assert doc["issuer"]["id"] == "did:web:northfield.example"
    code, body = verify_cli(genuine, doc, tmp_path)
    assert code == 1 and body["verdict"] == "not_confirmed"
    assert "an issuer this verifier does not trust" in check_of(body, "issuer_identity")["message"]

    runner = genuine.test_cli_runner()
    added = runner.invoke(args=["trust", "add", str(entry_file)])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["added"][0]["name"] == "Northfield College"
    listed = json.loads(runner.invoke(args=["trust", "list"]).stdout)
    assert [e["did"] for e in listed] == ["did:web:127.0.0.1%3A5000", "did:web:northfield.example"]

    code, body = verify_cli(genuine, doc, tmp_path)
    assert code == 0 and body["verdict"] == "genuine"
    assert body["issuer"]["name"] == "Northfield College" and body["issuer"]["domain"] == "northfield.example"
    assert "Issued by Northfield College (northfield.example), confirmed by this installation's trust list" in \
        check_of(body, "issuer_identity")["message"]

    removed = runner.invoke(args=["trust", "remove", "did:web:northfield.example"])
    assert removed.exit_code == 0, removed.output
    code, body = verify_cli(genuine, doc, tmp_path)
    assert code == 1 and body["verdict"] == "not_confirmed"


def test_the_trust_list_file_is_read_with_the_issuer_gone(second_institution, anvil_url, tmp_path, db_urls):
    """ATTEST_TRUSTED_ISSUERS pins the institution: its server and database can go."""
    doc, entry_file, other = second_institution
    other.extensions.pop("attest.registry").close()
    other.extensions["attest.db"].engine.dispose()
    import shutil

    shutil.rmtree(tmp_path / "northfield")
    credential = tmp_path / "northfield-credential.json"
    credential.write_text(json.dumps(doc))
    proc = flask_process(tmp_path / "verifier", anvil_url, "credentials", "verify", str(credential),
                         database_url=db_urls.for_dir(tmp_path / "verifier"), ATTEST_TRUSTED_ISSUERS=str(entry_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    body = json.loads(proc.stdout)
    assert body["issuer"]["name"] == "Northfield College"
    assert "confirmed by the trust list northfield-entry.json" in check_of(body, "issuer_identity")["message"]


def test_accredited_on_chain_passes_and_de_accredited_fails(second_institution, anvil_url, tmp_path, db_urls):
    doc, _, _ = second_institution
    accreditor = Account.create()
    with open_registry(Settings.from_env(data_dir=tmp_path / "agency-funding", rpc_url=anvil_url)) as funded:
        from credentials.chain import fund_from_dev_account

        fund_from_dev_account(funded.w3, accreditor.address)
        agency, _block = AccreditationRegistry.deploy(funded.w3, accreditor)
        registry = anchor_of(doc)["anchor"]["registry"]
        agency.accredit("did:web:northfield.example", "Northfield College", registry, 31337)
    verifier = create_app({"TESTING": True, "data_dir": tmp_path / "verifier", "rpc_url": anvil_url,
                           "database_url": db_urls.for_dir(tmp_path / "verifier"),
                           "SECRET_KEY": "x", "accreditation_registry": f"31337:{agency.address}"})
    code, body = verify_cli(verifier, doc, tmp_path)
    assert code == 0 and body["verdict"] == "genuine", body
    assert body["issuer"]["source"].startswith(f"accreditation by the accreditation registry {agency.address}")
    agency.withdraw("did:web:northfield.example")
    code, body = verify_cli(verifier, doc, tmp_path)
    assert code == 1 and body["verdict"] == "not_confirmed"
    assert "withdrew its accreditation of Northfield College" in check_of(body, "issuer_identity")["message"]


class Served:
    """An installation's app served on 127.0.0.1 and a free port (its DID document live)."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)


def test_a_did_web_entry_is_resolved_from_the_live_did_document(genuine, anvil_url, tmp_path, db_urls):
    port = free_port()
    other = create_app({"TESTING": True, "data_dir": tmp_path / "live", "rpc_url": anvil_url, "SECRET_KEY": "x",
                        "database_url": db_urls.for_dir(tmp_path / "live"),
                        "public_url": f"http://127.0.0.1:{port}", "institution_name": "Live University"})
    doc = issue_stored(other, 1)[0]
    did = f"did:web:127.0.0.1%3A{port}"
    assert doc["issuer"]["id"] == did
    server = Served(other, port)
    try:
        served = requests.get(f"http://127.0.0.1:{port}/.well-known/did.json", timeout=10).json()
        assert served["id"] == did
        runner = genuine.test_cli_runner()
        assert runner.invoke(args=["trust", "add", did, "--name", "Live University"]).exit_code == 0
        code, body = verify_cli(genuine, doc, tmp_path)
        assert code == 0 and body["verdict"] == "genuine", body
        assert f"keys from its DID document at http://127.0.0.1:{port}/.well-known/did.json" in body["issuer"]["source"]
    finally:
        server.stop()
        other.extensions.pop("attest.registry").close()
    # The server is gone and the cache is cold: identity cannot be confirmed now, which is not "not valid".
    genuine.extensions.pop("attest.trust")
    code, body = verify_cli(genuine, doc, tmp_path)
    assert code == 3 and body["verdict"] == "unavailable"
    identity = check_of(body, "issuer_identity")
    assert identity["status"] == "unavailable" and "cannot be confirmed right now" in identity["message"]
    api = genuine.test_client().post("/api/v1/credentials/verify", json=doc)
    assert api.status_code == 503 and api.headers["Retry-After"] and api.get_json()["verdict"] == "unavailable"
    assert "Could not check right now" in verify_page(genuine, doc)


def test_the_did_document_is_served_where_did_web_says(genuine):
    issue_stored(genuine, 1)
    response = genuine.test_client().get("/.well-known/did.json")
    assert response.status_code == 200 and response.mimetype == "application/did+json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    doc = response.get_json()
    assert doc["id"] == "did:web:127.0.0.1%3A5000"
    from credentials.runtime import get_registry

    registry = get_registry(genuine)
    accounts = [m["blockchainAccountId"] for m in doc["verificationMethod"] if m["type"] != "Multikey"]
    assert accounts == [f"eip155:{registry.chain_id}:{registry.issuer.address}"]
    # The Ed25519 key that signs Data Integrity proofs, as a Multikey the assertion method names.
    from credentials.runtime import get_keyring

    current = get_keyring(genuine).current.public_key_multibase
    multikeys = [m for m in doc["verificationMethod"] if m["type"] == "Multikey"]
    assert [m["publicKeyMultibase"] for m in multikeys] == [current]
    assert multikeys[0]["id"] == f"{doc['id']}#{current}" and multikeys[0]["id"] in doc["assertionMethod"]
    services = {s["type"]: s["serviceEndpoint"] for s in doc["service"]}
    assert services["AttestCredentialRegistry"] == f"eip155:{registry.chain_id}:{registry.address}"
    assert genuine.test_client().get("/did.json").get_json() == doc  # the path form, for a mounted app


def test_institution_profile_cli_and_the_did_it_derives(genuine, tmp_path):
    runner = genuine.test_cli_runner()
    before = issue_stored(genuine, 1)[0]
    result = runner.invoke(args=["institution", "set", "--name", "Testing University", "--url",
                                 "https://registry.testing.example/attest"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["did"] == "did:web:registry.testing.example:attest"
    shown = json.loads(runner.invoke(args=["institution", "show"]).stdout)
    assert shown["name"] == "Testing University" and shown["domain"] == "registry.testing.example"
    assert shown["did_document"]["id"] == "did:web:registry.testing.example:attest"
    bad = runner.invoke(args=["institution", "set", "--url", "registry.testing.example"])
    assert bad.exit_code == 1 and "http(s) address" in bad.stderr
    doc = issue_stored(genuine, 1)[0]
    assert doc["issuer"]["id"] == "did:web:registry.testing.example:attest"
    assert doc["issuer"]["name"] == "Testing University"
    exported = json.loads(runner.invoke(args=["trust", "export"]).stdout)
    assert list(exported["entries"]) == ["did:web:registry.testing.example:attest", "did:web:127.0.0.1%3A5000"]
    # The credential issued under the old address keeps its DID and stays genuine here.
    assert verify_cli(genuine, before, tmp_path)[1]["verdict"] == "genuine"
    assert verify_cli(genuine, doc, tmp_path)[1]["verdict"] == "genuine"


def test_trust_add_refuses_junk_with_a_reason(genuine, tmp_path):
    runner = genuine.test_cli_runner()
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"entries": {"did:web:x.example": {"name": "X", "attest": {
        "ethereumAccounts": ["0x1234"]}}}}))
    result = runner.invoke(args=["trust", "add", str(junk)])
    assert result.exit_code == 1 and "ethereumAccounts[0]: expected a CAIP-10 id" in result.stderr
    result = runner.invoke(args=["trust", "add", "uni.example.edu"])
    assert result.exit_code == 1 and "neither a file nor a did:web" in result.stderr
    assert json.loads(runner.invoke(args=["trust", "list"]).stdout)[1:] == []


def test_registrar_pages_set_the_profile_and_the_trust_list(genuine, second_institution, runner):
    genuine.config["WTF_CSRF_ENABLED"] = True
    runner.invoke(args=["users", "create", "--email", "reg@uni.edu", "--password", "registrar-pass",
                        "--role", "registrar"])
    client = genuine.test_client()

    def token(url):
        return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                         client.get(url).get_data(as_text=True)).group(1)

    client.post("/login", data={"email": "reg@uni.edu", "password": "registrar-pass", "csrf_token": token("/login")})
    page = client.get("/registrar/institution").get_data(as_text=True)
    assert 'id="institution-did" class="break">did:web:127.0.0.1%3A5000<' in page
    saved = client.post("/registrar/institution", data={"name": "Example University of Testing",
                                                        "public_url": "https://uni.testing.example", "logo_url": "",
                                                        "csrf_token": token("/registrar/institution")})
    assert saved.status_code == 302
    assert client.get("/.well-known/did.json").get_json()["id"] == "did:web:uni.testing.example"
    # Without the token, nothing changes.
    assert client.post("/registrar/institution", data={"name": "Hijacked"}).status_code == 400

    _, entry_file, _ = second_institution
    added = client.post("/registrar/trust/add-file", content_type="multipart/form-data", data={
        "file": (open(entry_file, "rb"), "entry.json"), "name": "", "csrf_token": token("/registrar/trust")})
    assert added.status_code == 302
    page = client.get("/registrar/trust").get_data(as_text=True)
    assert 'data-did="did:web:northfield.example"' in page and "Northfield College" in page
    exported = client.get("/registrar/trust.json").get_json()
    assert set(exported["entries"]) >= {"did:web:uni.testing.example", "did:web:northfield.example"}
    removed = client.post("/registrar/trust/remove", data={"did": "did:web:northfield.example",
                                                           "csrf_token": token("/registrar/trust")})
    assert removed.status_code == 302
    assert 'data-did="did:web:northfield.example"' not in client.get("/registrar/trust").get_data(as_text=True)
    # Pages that need a registrar login have it.
    anonymous = genuine.test_client()
    assert anonymous.get("/registrar/trust").status_code == 302
    assert anonymous.get("/registrar/institution").status_code == 302
