"""The credential's fingerprint: keccak256 over its RFC 8785 (JCS) canonical
JSON, without its `proof`. This is the Merkle leaf and what the issuer signs."""

from __future__ import annotations

import rfc8785
from Crypto.Hash import keccak as _keccak


def keccak256(data: bytes) -> bytes:
    h = _keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


def canonical_json(document: dict) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme: sorted keys, no white space,
    ECMAScript number forms, UTF-8."""
    return rfc8785.dumps(document)


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
