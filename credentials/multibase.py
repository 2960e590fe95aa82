"""Multibase strings, the two encodings the W3C credential specs use:
`z` + base58btc (Data Integrity proof values, Multikey public keys) and
`u` + base64url without padding (Bitstring Status List `encodedList`).

Written here rather than taken from the `base58` package: base58btc is a
dozen lines of integer arithmetic, and what matters is the multibase framing
and errors that say which of the two went wrong.
"""

from __future__ import annotations

import base64
import binascii

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(BASE58_ALPHABET)}
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_PAIRS = [a + b for a in BASE58_ALPHABET for b in BASE58_ALPHABET]  # 58**2 = 3364


class MultibaseError(ValueError):
    pass


def b58encode(data: bytes) -> str:
    """Bitcoin's base58: big-endian base 58, one leading '1' per zero byte."""
    number = int.from_bytes(data, "big")
    pairs = []
    # Two digits per step from a table: the digit-by-digit loop cost as much
    # as the Ed25519 signature itself.
    while number:
        number, rem = divmod(number, 3364)
        pairs.append(_PAIRS[rem])
    text = "".join(reversed(pairs)).lstrip("1")
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + text


# Decoding: each character to its digit in one C call (255: not base58), then
# five digits at a time as one small integer, so the big number is multiplied
# 18 times for a signature, not 88: about a seventh of the digit-by-digit time.
_DIGIT_OF_BYTE = bytes(_BASE58_INDEX.get(chr(i), 255) for i in range(256))
_FIVE_DIGITS = 58**5


def b58decode(text: str) -> bytes:
    digits = text.encode("ascii", "replace").translate(_DIGIT_OF_BYTE)
    if 255 in digits:
        position = next(i for i, c in enumerate(text) if c not in _BASE58_INDEX)
        raise MultibaseError(f"{text[position]!r} at position {position} is not a base58btc character")
    digits = b"\0" * (-len(digits) % 5) + digits  # leading zero digits leave the number as it is
    number = 0
    for a, b, c, d, e in zip(digits[0::5], digits[1::5], digits[2::5], digits[3::5], digits[4::5], strict=True):
        number = number * _FIVE_DIGITS + (((a * 58 + b) * 58 + c) * 58 + d) * 58 + e
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def encode_base58btc(data: bytes) -> str:
    """Multibase base58btc: `z` then base58."""
    return "z" + b58encode(data)


def decode_base58btc(value: object, what: str = "value") -> bytes:
    """Bytes of a `z…` multibase string; MultibaseError naming `what`."""
    if not isinstance(value, str) or not value.startswith("z") or len(value) < 2:
        raise MultibaseError(f"{what} must be a multibase base58btc string (a 'z' then base58), "
                             f"found {value!r:.40}")
    try:
        return b58decode(value[1:])
    except MultibaseError as exc:
        raise MultibaseError(f"{what} is not base58btc: {exc}") from None


def encode_base64url(data: bytes) -> str:
    """Multibase base64url without padding: `u` then RFC 4648 §5."""
    return "u" + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_base64url(value: object, what: str = "value") -> bytes:
    """Bytes of a `u…` multibase string; MultibaseError naming `what`."""
    if not isinstance(value, str) or not value.startswith("u"):
        raise MultibaseError(f"{what} must be a multibase base64url string (a 'u' then base64url), "
                             f"found {value!r:.40}")
    body = value[1:]
    if any(c in "+/=" for c in body):
        raise MultibaseError(f"{what} holds characters outside the unpadded base64url alphabet")
    try:
        # validate=True: the plain decoder would skip stray characters silently.
        standard = body.translate(_URLSAFE_TO_STANDARD) + "=" * (-len(body) % 4)
        return base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MultibaseError(f"{what} is not base64url: {exc}") from None
