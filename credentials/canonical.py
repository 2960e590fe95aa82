"""The credential's fingerprint: keccak256 over its RFC 8785 (JCS) canonical
JSON, without its `proof`. This is the Merkle leaf and what the issuer signs.

`canonical_json` has a fast path: for documents made only of dicts with ASCII
keys, lists, strings, booleans, null and integers within ±(2**53 - 1) — every
credential Attest issues — the JCS form is exactly what orjson writes with
sorted keys (no white space, JSON's minimal string escaping as JCS asks,
integers as plain decimals, and sorting ASCII keys by code point equals JCS's
UTF-16 order). orjson takes 4 us for a credential where the standard
library's C encoder took 34 us. Anything else (floats, huge integers,
non-ASCII keys, tuples, lone surrogates) goes through the `rfc8785` package.
A property test checks the two agree byte for byte on generated documents.
"""

from __future__ import annotations

import orjson
import rfc8785
from sha3 import keccak_256 as _keccak_256  # safe-pysha3: C, 1.9 us a hash against pycryptodome's 12 us


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (the original Keccak padding, not NIST SHA3-256)."""
    return _keccak_256(data).digest()


_SAFE_INT = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS


def _simple(value) -> bool:
    """Is `value` inside the shape where orjson's sorted output is JCS?"""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _simple(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _simple(item):
                return False
        return True
    if kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    return False


def canonical_json(document: dict) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme: sorted keys, no white space,
    ECMAScript number forms, UTF-8."""
    if _simple(document):
        try:
            return orjson.dumps(document, option=_SORTED)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: let rfc8785 reject it in its own words
    return rfc8785.dumps(document)


def plain_fingerprint(document: dict) -> bytes:
    """`fingerprint` of a proof-less document its caller vouches is inside
    the fast path's shape (dicts with ASCII keys, lists, strings, booleans,
    null; no floats or integers): the shape walk is skipped, which was 5 % of
    issuing a credential. A lone surrogate still goes to rfc8785, which
    refuses it in its own words."""
    try:
        return keccak256(orjson.dumps(document, option=_SORTED))
    except orjson.JSONEncodeError:  # a lone surrogate, or a value outside the shape after all
        return keccak256(rfc8785.dumps(document))


def unsigned(credential: dict) -> dict:
    return {k: v for k, v in credential.items() if k != "proof"}


def fingerprint(credential: dict) -> bytes:
    """keccak256(JCS(credential without proof)), 32 bytes."""
    return keccak256(canonical_json(unsigned(credential)))


def to_hex(value: bytes) -> str:
    return "0x" + value.hex()


def from_hex(value: str, length: int | None = None) -> bytes:
    """Bytes from a 0x-hex string; ValueError naming what was wrong."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"expected a 0x-prefixed hex string, found {value!r:.80}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ValueError(f"not hexadecimal: {value!r:.80}") from exc
    if length is not None and len(raw) != length:
        raise ValueError(f"expected {length} bytes, found {len(raw)}")
    return raw
