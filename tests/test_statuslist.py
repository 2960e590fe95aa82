"""Bitstring Status List: the codec, the entry, the list credential and its
check, and refusals of malformed or oversized lists. Digital Bazaar's
@digitalbazaar/vc-bitstring-status-list reads the same lists."""

from __future__ import annotations

import copy
import gzip

import pytest

from credentials import dataintegrity, ed25519, jsonld, statuslist
from credentials.multibase import decode_base64url, encode_base64url
from tests.helpers_dataintegrity import (
    DID,
    STATUS_URL,
    did_document,
    node,
    signed_credential,
    status_list_credential,
)


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    return ed25519.load_or_create_keyring(tmp_path_factory.mktemp("keys"))


def test_bits_are_numbered_from_the_left_and_round_trip():
    bits = statuslist.StatusList()
    assert bits.length == 131_072
    for index in (0, 9, 131_071):
        bits.set(index)
    raw = gzip.decompress(decode_base64url(bits.encode()))
    assert raw[0] == 0x80 and raw[1] == 0x40 and raw[-1] == 0x01 and len(raw) == 16_384
    decoded = statuslist.StatusList.decode(bits.encode())
    assert decoded.set_indexes() == [0, 9, 131_071]
    decoded.set(9, False)
    assert not decoded.get(9) and decoded.get(0)
    assert bits.encode() == statuslist.StatusList.decode(bits.encode()).encode(), "deterministic"
    assert bits.encode().startswith("u") and "=" not in bits.encode()
    assert statuslist.StatusList.from_indexes([131_071, 9, 0]).encode() == bits.encode()


def test_indexes_outside_the_list_are_refused():
    bits = statuslist.StatusList()
    for index in (-1, 131_072, True, "3"):
        with pytest.raises(statuslist.StatusListError, match="outside the list"):
            bits.get(index)
    with pytest.raises(statuslist.StatusListError, match="at least 131072"):
        statuslist.StatusList(1024)


@pytest.mark.parametrize("encoded,message", [
    ("H4sIAAAA", "multibase base64url"),
    ("u" + encode_base64url(b"not gzip at all")[1:], "not GZIP"),
    (encode_base64url(gzip.compress(bytes(16_384))[:-12]), "truncated"),
    (encode_base64url(gzip.compress(bytes(1024))), "at least 131072"),
    (encode_base64url(gzip.compress(bytes(16_384)) + b"junk"), "after its GZIP stream"),
    (encode_base64url(gzip.compress(bytes(16_384)) * 2), "after its GZIP stream"),
    ("u!!!", "not base64url"),
    (None, "multibase base64url"),
])
def test_malformed_lists_say_what_is_wrong(encoded, message):
    with pytest.raises(statuslist.StatusListError, match=message):
        statuslist.StatusList.decode(encoded)


def test_a_gzip_bomb_is_refused_without_inflating_it():
    bomb = encode_base64url(gzip.compress(bytes(64 * 1024 * 1024)))  # 64 MiB of zeros, ~64 KiB of text
    assert len(bomb) < 100_000
    with pytest.raises(statuslist.StatusListError, match="more than 16777216 bytes"):
        statuslist.StatusList.decode(bomb)
    with pytest.raises(statuslist.StatusListError, match="more than 20000 bytes"):
        statuslist.StatusList.decode(encode_base64url(gzip.compress(bytes(20_001))), max_bytes=20_000)
    assert statuslist.StatusList.decode(encode_base64url(gzip.compress(bytes(20_000))), max_bytes=20_000)


def test_the_entry_and_the_list_credential_have_the_recommendations_shape():
    entry = statuslist.status_entry(STATUS_URL, 94567)
    assert entry == {"id": f"{STATUS_URL}#94567", "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
                     "statusListIndex": "94567", "statusListCredential": STATUS_URL}
    listed = statuslist.status_list_credential(STATUS_URL, DID, statuslist.StatusList(), "2026-01-01T00:00:00Z")
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listed["credentialSubject"]["type"] == "BitstringStatusList"
    assert listed["credentialSubject"]["statusPurpose"] == "revocation"
    jsonld.expand_safe(listed)


def test_is_revoked_reads_the_entry_against_the_list(ring):
    cred = signed_credential(ring, index=7)
    assert statuslist.is_revoked(cred, status_list_credential(ring)) is False
    assert statuslist.is_revoked(cred, status_list_credential(ring, revoked=[7])) is True
    assert statuslist.is_revoked(cred, status_list_credential(ring, revoked=[6, 8])) is False
    no_status = {k: v for k, v in cred.items() if k != "credentialStatus"}
    assert statuslist.is_revoked(no_status, status_list_credential(ring)) is None


@pytest.mark.parametrize("change,message", [
    (lambda sl, c: sl.__setitem__("id", "https://uni.example.edu/status/2"), "the entry names"),
    (lambda sl, c: sl.__setitem__("issuer", "did:web:evil.example"), "issued by 'did:web:evil.example'"),
    (lambda sl, c: sl["credentialSubject"].__setitem__("statusPurpose", "suspension"), "is for 'suspension'"),
    (lambda sl, c: sl.__setitem__("type", ["VerifiableCredential"]), "must include BitstringStatusListCredential"),
    (lambda sl, c: c["credentialStatus"].__setitem__("statusListIndex", "7x"), "base-10 integer"),
    (lambda sl, c: c["credentialStatus"].__setitem__("statusListIndex", 7), "base-10 integer"),
    (lambda sl, c: c["credentialStatus"].__setitem__("statusListIndex", "131072"), "outside the list"),
    (lambda sl, c: c.__setitem__("credentialStatus", [c["credentialStatus"]] * 2), "2 BitstringStatusListEntry"),
])
def test_mismatched_lists_and_entries_are_refused(ring, change, message):
    cred, listed = signed_credential(ring), status_list_credential(ring)
    change(listed, cred)
    with pytest.raises(statuslist.StatusListError, match=message):
        statuslist.is_revoked(cred, listed)


def test_the_list_credential_verifies_with_data_integrity(ring):
    listed = status_list_credential(ring, revoked=[3])
    proof = dataintegrity.find_proofs(listed)[0]
    assert dataintegrity.verify_eddsa_rdfc_2022(listed, proof, ring.signing_key.public_key())
    flipped = copy.deepcopy(listed)
    flipped["credentialSubject"]["encodedList"] = statuslist.StatusList().encode()
    assert not dataintegrity.verify_eddsa_rdfc_2022(flipped, proof, ring.signing_key.public_key())


def test_digital_bazaar_reads_a_flipped_bit_as_revoked(ring):
    """@digitalbazaar/vc-bitstring-status-list checks the entry against our
    list credential, verifying the list's own proof and issuer."""
    cred = signed_credential(ring, index=7)
    dids = [did_document(ring)]
    clear = node("check_status.mjs", {"credential": cred, "statusListCredential": status_list_credential(ring),
                                      "didDocuments": dids})
    assert clear == {"verified": True, "revoked": False, "error": None}
    revoked = node("check_status.mjs", {"credential": cred,
                                        "statusListCredential": status_list_credential(ring, revoked=[7]),
                                        "didDocuments": dids})
    assert revoked == {"verified": True, "revoked": True, "error": None}
    forged = status_list_credential(ring)
    forged["credentialSubject"]["encodedList"] = status_list_credential(ring, revoked=[7])["credentialSubject"][
        "encodedList"]
    answer = node("check_status.mjs", {"credential": cred, "statusListCredential": forged, "didDocuments": dids})
    assert answer["verified"] is False and "not verified" in answer["error"]
