"""The trust model's pure parts: did:web <-> URL, the trust-list file format,
the DID document and its parsing, and the policy's judgements. No chain."""

from __future__ import annotations

import json

import pytest

from credentials.didweb import DidWebResolver, parse_did_document
from credentials.identity import (
    ChainAccount,
    IdentityError,
    Institution,
    did_web_document_url,
    did_web_from_url,
    domain_of,
    normalize_public_url,
)
from credentials.trust import (
    NOT_TRUSTED,
    TRUSTED,
    UNKNOWN_NOW,
    Claim,
    FileSource,
    StaticSource,
    TrustEntry,
    TrustListError,
    TrustPolicy,
    TrustUnavailable,
    entry_for_institution,
    parse_trust_list,
    trust_list_json,
)

KEY = "0x" + "ab" * 20
OTHER_KEY = "0x" + "cd" * 20
REGISTRY = "0x" + "12" * 20
OTHER_REGISTRY = "0x" + "34" * 20


@pytest.mark.parametrize("url, did, document", [
    ("https://uni.example.edu", "did:web:uni.example.edu", "https://uni.example.edu/.well-known/did.json"),
    ("https://Uni.Example.EDU/", "did:web:uni.example.edu", "https://uni.example.edu/.well-known/did.json"),
    ("https://example.edu/registry/attest", "did:web:example.edu:registry:attest",
     "https://example.edu/registry/attest/did.json"),
    ("http://127.0.0.1:5000", "did:web:127.0.0.1%3A5000", "https://127.0.0.1:5000/.well-known/did.json"),
    ("https://bücher.example", "did:web:xn--bcher-kva.example", "https://xn--bcher-kva.example/.well-known/did.json"),
])
def test_did_web_from_the_public_url_and_back(url, did, document):
    assert did_web_from_url(url) == did
    assert did_web_document_url(did) == document


@pytest.mark.parametrize("bad", ["uni.example.edu", "ftp://uni.example.edu", "https://", "https://a.edu/?x=1",
                                 "https://user:pw@a.edu", "https://exa mple.edu"])
def test_a_public_url_that_cannot_name_an_institution_is_refused(bad):
    with pytest.raises(IdentityError) as caught:
        normalize_public_url(bad)
    assert "public URL" in str(caught.value)


def test_domain_of_drops_the_port_and_path():
    assert domain_of("did:web:127.0.0.1%3A5000") == "127.0.0.1"
    assert domain_of("did:web:example.edu:registry") == "example.edu"
    assert domain_of("did:pkh:eip155:1:" + KEY) is None


def institution(**kw) -> Institution:
    base = dict(name="Example University", public_url="https://uni.example.edu", dids=("did:web:uni.example.edu",),
                issuers=(ChainAccount(31337, KEY),), registries=(ChainAccount(31337, REGISTRY),))
    return Institution(**{**base, **kw})


def test_did_document_lists_signing_keys_and_registries_and_parses_back():
    inst = institution(issuers=(ChainAccount(31337, KEY), ChainAccount(1, OTHER_KEY)))
    doc = inst.did_document()
    assert doc["id"] == "did:web:uni.example.edu"
    accounts = [m["blockchainAccountId"] for m in doc["verificationMethod"]]
    assert accounts == [f"eip155:31337:{KEY}", f"eip155:1:{OTHER_KEY}"]
    assert set(doc["assertionMethod"]) == {m["id"] for m in doc["verificationMethod"]}
    assert {"type": "AttestCredentialRegistry", "serviceEndpoint": f"eip155:31337:{REGISTRY}"}.items() <= \
        next(s for s in doc["service"] if s["type"] == "AttestCredentialRegistry").items()
    entry = parse_did_document(inst.did, json.loads(json.dumps(doc)), "https://uni.example.edu/.well-known/did.json")
    assert entry.lists_issuer(31337, KEY.upper().replace("0X", "0x")) and entry.lists_issuer(1, OTHER_KEY)
    assert entry.lists_registry(31337, REGISTRY) and not entry.lists_registry(1, REGISTRY)


def test_a_did_document_for_another_did_is_refused():
    doc = institution().did_document()
    with pytest.raises(ValueError, match="is for 'did:web:uni.example.edu', not 'did:web:evil.example'"):
        parse_did_document("did:web:evil.example", doc, "https://evil.example/.well-known/did.json")


def test_trust_list_round_trips_in_the_dcc_format():
    entries = entry_for_institution(institution())
    document = trust_list_json(entries, publisher="Example University")
    assert set(document) == {"meta", "entries"}
    body = document["entries"]["did:web:uni.example.edu"]
    assert body["name"] == "Example University" and body["url"] == "https://uni.example.edu"
    assert body["attest"]["ethereumAccounts"] == [f"eip155:31337:{KEY}"]
    (back,) = parse_trust_list(json.dumps(document))
    assert (back.did, back.name, back.issuers, back.registries) == \
        (entries[0].did, entries[0].name, entries[0].issuers, entries[0].registries)


def test_a_plain_dcc_registry_file_is_a_trust_list():
    dcc = {"meta": {"created": "2020-12-02T02:32:16+0000"},
           "entries": {"did:web:keys.example.org:plugfest1": {"name": "Plugfest issuer", "url": "https://x.org"}}}
    (entry,) = parse_trust_list(dcc)
    assert entry.pins_nothing and entry.name == "Plugfest issuer" and entry.shown_domain == "keys.example.org"


@pytest.mark.parametrize("document, words", [
    ({"entries": []}, "expected an object with \"entries\""),
    ({"entries": {"uni.example.edu": {"name": "U"}}}, "each key of entries must be a DID"),
    ({"entries": {"did:web:u.edu": {}}}, "entries['did:web:u.edu'].name: expected the institution's name"),
    ({"entries": {"did:web:u.edu": {"name": "U", "attest": {"ethereumAccounts": ["0x12"]}}}},
     "attest.ethereumAccounts[0]: expected a CAIP-10 id"),
    ({"entries": {"did:web:u.edu": {"name": "U", "attest": {"keys": []}}}}, "unknown member(s) keys"),
    ({"entries": {"did:key:z6Mk": {"name": "U"}}}, "must be a did:web"),
])
def test_trust_list_errors_name_the_path(document, words):
    with pytest.raises(TrustListError) as caught:
        parse_trust_list(document, "trust.json")
    assert words in str(caught.value) and str(caught.value).startswith("trust.json")


def entry(**kw) -> TrustEntry:
    base = dict(did="did:web:uni.example.edu", name="Example University", domain="uni.example.edu",
                issuers=(ChainAccount(31337, KEY),), registries=(ChainAccount(31337, REGISTRY),))
    return TrustEntry(**{**base, **kw})


def claim(**kw) -> Claim:
    base = dict(issuer_did="did:web:uni.example.edu", issuer_name="Example University", chain_id=31337,
                signer=KEY, registry=REGISTRY)
    return Claim(**{**base, **kw})


def policy(*entries: TrustEntry, resolve=None) -> TrustPolicy:
    return TrustPolicy([StaticSource("test", list(entries))], resolve=resolve)


def test_trusted_when_the_entry_lists_the_key_and_the_registry():
    judgement = policy(entry()).judge(claim())
    assert judgement.status == TRUSTED
    assert judgement.message.startswith("Issued by Example University (uni.example.edu)")
    assert judgement.confirmed_issuer() == {"did": "did:web:uni.example.edu", "name": "Example University",
                                            "domain": "uni.example.edu", "source": "the trust list"}


def test_same_name_same_did_another_key_is_refused_in_words():
    judgement = policy(entry()).judge(claim(signer=OTHER_KEY, issuer_name="Example University"))
    assert judgement.status == NOT_TRUSTED
    assert judgement.message == (
        f"The credential calls itself Example University (did:web:uni.example.edu), but the key that signed it "
        f"({OTHER_KEY}) is not one Example University lists; do not rely on this credential.")
    assert judgement.confirmed_issuer() is None


def test_another_registry_is_refused():
    judgement = policy(entry()).judge(claim(registry=OTHER_REGISTRY))
    assert judgement.status == NOT_TRUSTED and f"anchored in registry {OTHER_REGISTRY}" in judgement.message


def test_the_same_key_on_another_chain_is_not_the_same_pin():
    assert policy(entry()).judge(claim(chain_id=1)).status == NOT_TRUSTED


def test_an_unknown_did_is_not_trusted_and_the_document_name_is_only_its_word():
    judgement = policy(entry()).judge(claim(issuer_did="did:web:diploma-mill.example", issuer_name="Harvard"))
    assert judgement.status == NOT_TRUSTED
    assert "calls itself Harvard (did:web:diploma-mill.example), an issuer this verifier does not trust" in \
        judgement.message


def test_a_did_only_entry_is_resolved_and_an_unreachable_document_is_unknown_now():
    resolved = entry(source="its DID document at https://uni.example.edu/.well-known/did.json")
    did_only = TrustEntry(did="did:web:uni.example.edu", name="Example University")
    assert policy(did_only, resolve=lambda did: resolved).judge(claim()).status == TRUSTED

    def down(did):
        raise TrustUnavailable("its DID document at https://uni.example.edu/.well-known/did.json cannot be fetched")

    judgement = policy(did_only, resolve=down).judge(claim())
    assert judgement.status == UNKNOWN_NOW
    assert judgement.message.startswith("Who issued this credential cannot be confirmed right now")


def test_resolver_caches_success_and_remembers_failure_briefly():
    calls = []
    doc = json.dumps(institution().did_document()).encode()

    def fetch(url):
        calls.append(url)
        if len(calls) == 2:
            raise OSError("connection refused")
        return doc

    resolver = DidWebResolver(ttl=0.0, failure_ttl=60.0, fetch=fetch)
    assert resolver("did:web:uni.example.edu").lists_issuer(31337, KEY)
    assert calls == ["https://uni.example.edu/.well-known/did.json"]
    with pytest.raises(TrustUnavailable, match="cannot be fetched"):
        resolver("did:web:uni.example.edu")
    with pytest.raises(TrustUnavailable):
        resolver("did:web:uni.example.edu")  # remembered: not asked again within failure_ttl
    assert len(calls) == 2
    # Loopback development servers are asked over plain http.
    assert DidWebResolver().document_url("did:web:127.0.0.1%3A8123") == "http://127.0.0.1:8123/.well-known/did.json"


def test_a_broken_trust_file_makes_its_dids_unknown_not_untrusted(tmp_path):
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(trust_list_json([entry()])))
    source = FileSource(path, recheck_after=0.0)
    judge = TrustPolicy([source]).judge
    assert judge(claim()).status == TRUSTED
    path.write_text("{ not json")
    judgement = judge(claim())
    assert judgement.status == UNKNOWN_NOW and "trust list file cannot be read" in judgement.message
    assert source.error and "not JSON" in source.error


def test_older_did_pkh_credentials_are_trusted_by_the_key_they_name():
    pkh = f"did:pkh:eip155:31337:{KEY}"
    judgement = policy(entry()).judge(claim(issuer_did=pkh))
    assert judgement.status == TRUSTED and "older form" in judgement.message
    assert policy(entry()).judge(claim(issuer_did=f"did:pkh:eip155:31337:{OTHER_KEY}", signer=OTHER_KEY)).status \
        == NOT_TRUSTED
