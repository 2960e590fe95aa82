"""Institution Ed25519 keys: Multikey encoding, the 0600 key ring, the
environment override and rotation that keeps old keys listed."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import ed25519
from credentials.multibase import (
    MultibaseError,
    b58decode,
    b58encode,
    decode_base64url,
    encode_base58btc,
    encode_base64url,
)

# The key of W3C vc-di-eddsa's test vectors (never for real use).
W3C_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
DID = "did:web:uni.example.edu"


def test_the_w3c_test_key_encodes_as_the_spec_says():
    key = ed25519.decode_secret_key(W3C_SECRET)
    assert ed25519.public_key_multibase(key) == W3C_PUBLIC
    assert ed25519.secret_key_multibase(key) == W3C_SECRET
    assert ed25519.public_key_multibase(ed25519.decode_public_key_multibase(W3C_PUBLIC)) == W3C_PUBLIC
    assert ed25519.verification_method_id(DID, key) == f"{DID}#{W3C_PUBLIC}"


def test_hex_secret_keys_are_accepted():
    key = ed25519.decode_secret_key(W3C_SECRET)
    hexed = ed25519.seed_bytes(key).hex()
    for text in (hexed, "0x" + hexed, f"  {hexed}\n"):
        assert ed25519.public_key_multibase(ed25519.decode_secret_key(text)) == W3C_PUBLIC


@pytest.mark.parametrize("value,message", [
    ("6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2", "multibase base58btc"),
    ("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ0", "not base58btc"),
    ("zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169", "multicodec prefix is 0x8024"),
    (encode_base58btc(b"\xed\x01" + bytes(31)), "31 key bytes"),
    (42, "multibase base58btc"),
])
def test_bad_public_keys_say_what_is_wrong(value, message):
    with pytest.raises(ed25519.Ed25519KeyError, match=message):
        ed25519.decode_public_key_multibase(value)


def test_bad_secret_keys_never_repeat_the_value():
    for value in ("zzzzzz", "00" * 31, "not a key at all", W3C_PUBLIC):
        with pytest.raises(ed25519.Ed25519KeyError) as refused:
            ed25519.decode_secret_key(value)
        assert value not in str(refused.value)


def _base58_digit_by_digit(text: str) -> bytes:
    """base58 as its definition reads, one digit at a time: the reference."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = 0
    for position, char in enumerate(text):
        if char not in alphabet:
            raise MultibaseError(f"{char!r} at position {position} is not a base58btc character")
        number = number * 58 + alphabet.index(char)
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + (number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b"")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl+é€\x00\ud800", max_size=120))
def test_base58_five_digits_at_a_time_is_base58(text):
    """b58decode groups five digits into one small integer: on any text (every
    length modulo 5, leading '1's, characters outside the alphabet, a lone
    surrogate) it gives the reference's bytes or the reference's error."""
    try:
        expected = ("bytes", _base58_digit_by_digit(text))
    except MultibaseError as exc:
        expected = ("error", str(exc))
    try:
        found = ("bytes", b58decode(text))
    except MultibaseError as exc:
        found = ("error", str(exc))
    assert found == expected


def test_base58_and_base64url_round_trip_with_leading_zeros():
    for data in (b"", b"\0", b"\0\0\x01", os.urandom(64), b"\xff" * 33):
        assert b58decode(b58encode(data)) == data
        assert decode_base64url(encode_base64url(data)) == data
    assert b58encode(b"\0\0\x01") == "112"
    with pytest.raises(MultibaseError, match="not base64url"):
        decode_base64url("uA")
    with pytest.raises(MultibaseError, match="alphabet"):
        decode_base64url("uAB+/")
    with pytest.raises(MultibaseError, match="not base64url"):
        decode_base64url("uAB C")


def test_the_ring_is_created_once_with_0600(tmp_path):
    keys = tmp_path / "keys"
    ring = ed25519.load_or_create_keyring(keys)
    path = keys / ed25519.KEYRING_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ed25519.load_or_create_keyring(keys)
    assert again.current == ring.current and again.current.retired is None
    assert ed25519.public_key_multibase(again.signing_key) == ring.current.public_key_multibase
    assert ring.current.public_key_multibase.startswith("z6Mk")
    os.chmod(path, 0o644)
    ed25519.load_or_create_keyring(keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_keeps_old_keys_listed_without_their_secrets(tmp_path):
    first = ed25519.load_or_create_keyring(tmp_path)
    second = ed25519.rotate(tmp_path, now="2027-01-01T00:00:00Z")
    assert second.current.public_key_multibase != first.current.public_key_multibase
    assert [r.public_key_multibase for r in second.records] == [second.current.public_key_multibase,
                                                                 first.current.public_key_multibase]
    old = second.records[1]
    assert old.retired == "2027-01-01T00:00:00Z"
    assert old.was_active(old.activated) and not old.was_active("2027-02-01T00:00:00Z")
    assert not old.was_active("2000-01-01T00:00:00Z")
    stored = json.loads((tmp_path / ed25519.KEYRING_FILE).read_text())["keys"]
    assert [("secretKeyMultibase" in k) for k in stored] == [True, False]
    assert ed25519.secret_key_multibase(first.signing_key) not in (tmp_path / ed25519.KEYRING_FILE).read_text()

    entries = second.did_document_entries(DID)
    ids = [m["id"] for m in entries["verificationMethod"]]
    assert ids == entries["assertionMethod"] == [second.verification_method(DID),
                                                 f"{DID}#{first.current.public_key_multibase}"]
    assert all(m["type"] == "Multikey" and m["controller"] == DID for m in entries["verificationMethod"])
    assert second.record_for(ids[1], DID) == old
    assert second.record_for(f"{DID}#z6MkUnknown", DID) is None
    reloaded = ed25519.load_or_create_keyring(tmp_path)
    assert reloaded.records == second.records


def test_the_environment_key_is_current_and_the_ring_still_lists_its_keys(tmp_path):
    ed25519.load_or_create_keyring(tmp_path)
    listed = ed25519.rotate(tmp_path, now="2027-01-01T00:00:00Z")
    ring = ed25519.load_or_create_keyring(tmp_path, W3C_SECRET)
    assert ring.current.public_key_multibase == W3C_PUBLIC
    assert [r.public_key_multibase for r in ring.records[1:]] == [r.public_key_multibase for r in listed.records]
    before = (tmp_path / ed25519.KEYRING_FILE).read_text()
    assert W3C_PUBLIC not in before, "nothing is written for an environment key"


def test_the_environment_key_alone_needs_no_file(tmp_path):
    secret = ed25519.seed_bytes(Ed25519PrivateKey.generate()).hex()
    ring = ed25519.load_or_create_keyring(tmp_path / "none", secret)
    assert len(ring.records) == 1 and not (tmp_path / "none").exists()


def test_a_damaged_ring_is_refused_with_its_path(tmp_path):
    (tmp_path / ed25519.KEYRING_FILE).write_text('{"keys": []}')
    with pytest.raises(ed25519.Ed25519KeyError, match=ed25519.KEYRING_FILE):
        ed25519.load_or_create_keyring(tmp_path)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=80), st.integers(0, 3))
def test_base58_matches_the_digit_by_digit_definition(data, zeros):
    data = b"\0" * zeros + data
    number, digits = int.from_bytes(data, "big"), ""
    while number:
        number, rem = divmod(number, 58)
        digits = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"[rem] + digits
    expected = "1" * (len(data) - len(data.lstrip(b"\0"))) + digits
    assert b58encode(data) == expected
    assert b58decode(expected) == data


def test_assertion_key_reads_a_did_document(tmp_path):
    ring = ed25519.load_or_create_keyring(tmp_path)
    document = {"id": DID, **ring.did_document_entries(DID)}
    method = ring.verification_method(DID)
    assert ed25519.assertion_key(document, method) == ring.current.public_key_multibase
    assert ed25519.assertion_key({**document, "assertionMethod": []}, method) is None
    assert ed25519.assertion_key({**document, "id": "did:web:other.example"}, method) is None
    assert ed25519.assertion_key(document, f"{DID}#z6MkUnlisted") is None
    embedded = {"id": DID, "assertionMethod": document["verificationMethod"]}
    assert ed25519.assertion_key(embedded, method) == ring.current.public_key_multibase


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200), st.integers(0, 64 * 8 - 1),
       st.sampled_from(["signature", "message", "none"]))
def test_libsodium_verification_agrees_with_openssl(seed, message, bit, flip):
    """ed25519.verify_signature (libsodium) against cryptography (OpenSSL) on
    honest signatures, and with one bit of the signature or the message flipped."""
    from cryptography.exceptions import InvalidSignature

    key = Ed25519PrivateKey.from_private_bytes(seed)
    signature = bytearray(key.sign(message))
    data = bytearray(message)
    if flip == "signature":
        signature[bit // 8] ^= 1 << (bit % 8)
    elif flip == "message" and data:
        data[bit % len(data)] ^= 1 << (bit % 8)
    try:
        key.public_key().verify(bytes(signature), bytes(data))
        openssl = True
    except InvalidSignature:
        openssl = False
    for form in (key.public_key(), ed25519.public_key_multibase(key), ed25519.public_bytes(key)):
        assert ed25519.verify_signature(form, bytes(signature), bytes(data)) is openssl
    assert openssl is (flip == "none" or (flip == "message" and not data))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_libsodium_signatures_are_openssls(seed, message):
    """ed25519.sign (libsodium) makes the very bytes cryptography (OpenSSL) makes."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert ed25519.sign(key, message) == key.sign(message)
