"""W3C Bitstring Status List v1.0: the revocation list a verifier reads
without the chain.

A status list is a bitstring, index 0 its left-most bit (the high bit of the
first byte); a set bit means revoked. It is published GZIP-compressed as a
multibase base64url string (`u…`), in a `BitstringStatusListCredential`
whose subject is a `BitstringStatusList`. Each credential carries a
`BitstringStatusListEntry` naming the list credential's URL and its index.
The list holds at least 131,072 entries (16 KiB) so that fetching it says
nothing about which credential a verifier holds.

Which credential gets which index: `slot_index` maps a list's n-th issued
credential to a pseudo-random position (a keyed permutation of the list, so
indexes are unique by construction and say nothing about the order of
issuing, as the Recommendation's privacy section asks).

Decoding a fetched list refuses anything malformed with a sentence saying
what, and refuses to inflate more than `max_bytes` (a few hundred bytes of
gzip can claim gigabytes).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from credentials.multibase import MultibaseError, decode_base64url, encode_base64url

VC_V2 = "https://www.w3.org/ns/credentials/v2"
MIN_ENTRIES = 131_072
MAX_DECODED_BYTES = 16 * 1024 * 1024  # 134 million entries
REVOCATION = "revocation"
ENTRY_TYPE = "BitstringStatusListEntry"
LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"
LIST_TYPE = "BitstringStatusList"


class StatusListError(ValueError):
    """A status list, entry or list credential that cannot be used, and why."""


class StatusList:
    """A bitstring of `length` entries, all clear to begin with."""

    def __init__(self, length: int = MIN_ENTRIES, *, _bits: bytearray | None = None):
        if length < MIN_ENTRIES or length % 8:
            raise StatusListError(f"a status list has at least {MIN_ENTRIES} entries, in whole bytes; "
                                  f"asked for {length}")
        self._bits = _bits if _bits is not None else bytearray(length // 8)

    @classmethod
    def from_indexes(cls, revoked: Iterable[int], length: int = MIN_ENTRIES) -> StatusList:
        """A list with the bits of `revoked` set: the list credential is
        rebuilt from the revoked indexes on every revocation."""
        status_list = cls(length)
        for index in revoked:
            status_list.set(index)
        return status_list

    @property
    def length(self) -> int:
        return len(self._bits) * 8

    def _locate(self, index: int) -> tuple[int, int]:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < self.length:
            raise StatusListError(f"status index {index!r} is outside the list (0 to {self.length - 1})")
        return index >> 3, 0x80 >> (index & 7)

    def get(self, index: int) -> bool:
        byte, mask = self._locate(index)
        return bool(self._bits[byte] & mask)

    def set(self, index: int, value: bool = True) -> None:
        byte, mask = self._locate(index)
        if value:
            self._bits[byte] |= mask
        else:
            self._bits[byte] &= ~mask & 0xFF

    def set_indexes(self) -> list[int]:
        """Every index whose bit is set, ascending."""
        return [i * 8 + b for i, byte in enumerate(self._bits) if byte for b in range(8) if byte & (0x80 >> b)]

    def encode(self) -> str:
        """The `encodedList`: `u` + base64url(GZIP(bitstring)). mtime=0 keeps
        the same list encoding to the same text."""
        return encode_base64url(gzip.compress(bytes(self._bits), compresslevel=9, mtime=0))

    @classmethod
    def decode(cls, encoded: object, max_bytes: int = MAX_DECODED_BYTES) -> StatusList:
        """The list an `encodedList` holds; StatusListError saying what is
        wrong, and refusing to inflate past `max_bytes`."""
        try:
            compressed = decode_base64url(encoded, "encodedList")
        except MultibaseError as exc:
            raise StatusListError(str(exc)) from None
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        try:
            raw = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error as exc:
            raise StatusListError(f"encodedList is not GZIP data ({exc})") from None
        if len(raw) > max_bytes or inflater.unconsumed_tail:
            raise StatusListError(f"encodedList inflates to more than {max_bytes} bytes; refused")
        if not inflater.eof:
            raise StatusListError("encodedList is truncated GZIP data")
        if inflater.unused_data:
            raise StatusListError("encodedList has data after its GZIP stream")
        if len(raw) * 8 < MIN_ENTRIES:
            raise StatusListError(f"the list holds {len(raw) * 8} entries; Bitstring Status List requires "
                                  f"at least {MIN_ENTRIES}")
        return cls(len(raw) * 8, _bits=bytearray(raw))


_FEISTEL_ROUNDS = 4


@lru_cache(maxsize=64)
def _round_tables(secret: bytes, half: int) -> tuple[tuple[int, ...], ...]:
    """The Feistel round function as tables (2**half entries a round): made
    once per list and process, so an index costs a few look-ups."""
    mask = (1 << half) - 1
    return tuple(tuple(int.from_bytes(hashlib.blake2b(step.to_bytes(1, "big") + value.to_bytes(4, "big"),
                                                      digest_size=4, key=secret).digest(), "big") & mask
                       for value in range(1 << half))
                 for step in range(_FEISTEL_ROUNDS))


def slot_index(secret: bytes, counter: int, length: int = MIN_ENTRIES) -> int:
    """The index the `counter`-th credential of a list gets: a keyed
    pseudo-random permutation of [0, length), so two counters never share an
    index. A balanced Feistel network on the next even number of bits (keyed
    blake2b round functions), cycle-walked back into range: each step stays
    outside with probability under 1/2 for Attest's power-of-two lists."""
    if not 0 <= counter < length:
        raise StatusListError(f"slot {counter} is outside a list of {length} entries")
    half = (max(2, (length - 1).bit_length()) + 1) // 2
    mask = (1 << half) - 1
    tables = _round_tables(secret, half)
    value = counter
    while True:
        left, right = value >> half, value & mask
        for table in tables:
            left, right = right, left ^ table[right]
        value = (left << half) | right
        if value < length:
            return value


def status_entry(list_credential_url: str, index: int, purpose: str = REVOCATION) -> dict:
    """The credential's `credentialStatus`: a BitstringStatusListEntry."""
    if not isinstance(index, int) or index < 0:
        raise StatusListError(f"a status index is a non-negative integer, found {index!r}")
    return {"id": f"{list_credential_url}#{index}", "type": ENTRY_TYPE, "statusPurpose": purpose,
            "statusListIndex": str(index), "statusListCredential": list_credential_url}


def status_list_credential(url: str, issuer: str | dict, status_list: StatusList, valid_from: str, *,
                           purpose: str = REVOCATION, valid_until: str | None = None) -> dict:
    """The unsigned BitstringStatusListCredential published at `url` (sign
    it with dataintegrity.sign_eddsa_rdfc_2022 and attach the proof)."""
    credential = {
        "@context": [VC_V2],
        "id": url,
        "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {"id": f"{url}#list", "type": LIST_TYPE, "statusPurpose": purpose,
                              "encodedList": status_list.encode()},
    }
    if valid_until:
        credential["validUntil"] = valid_until
    return credential


@dataclass(frozen=True)
class StatusEntry:
    list_credential: str
    index: int
    purpose: str


def read_entry(credential: dict, purpose: str = REVOCATION) -> StatusEntry | None:
    """The credential's BitstringStatusListEntry for `purpose`; None if it
    has none; StatusListError if the entry is malformed."""
    status = credential.get("credentialStatus")
    entries = status if isinstance(status, list) else [status] if status is not None else []
    ours = [e for e in entries if isinstance(e, dict) and e.get("type") == ENTRY_TYPE
            and e.get("statusPurpose") == purpose]
    if not ours:
        return None
    if len(ours) > 1:
        raise StatusListError(f"the credential has {len(ours)} {ENTRY_TYPE} entries for {purpose}; expected one")
    entry = ours[0]
    url = entry.get("statusListCredential")
    if not isinstance(url, str) or not url:
        raise StatusListError("credentialStatus.statusListCredential must be a URL")
    raw = entry.get("statusListIndex")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        raise StatusListError(f"credentialStatus.statusListIndex must be a base-10 integer as a string, found {raw!r}")
    if entry.get("statusSize", 1) != 1:
        raise StatusListError(f"only one-bit statuses are supported, found statusSize {entry.get('statusSize')!r}")
    if entry.get("id") == url:
        raise StatusListError("credentialStatus.id must not be the status list credential's URL")
    return StatusEntry(url, int(raw), purpose)


def _issuer_id(issuer: object) -> object:
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def list_from_credential(list_credential: dict, entry: StatusEntry, credential_issuer: object,
                         max_bytes: int = MAX_DECODED_BYTES) -> StatusList:
    """The status list of a fetched list credential, after checking that it
    is the one the entry names, for the same purpose, from the same issuer.
    Its proof is the caller's to check (dataintegrity.verify_eddsa_rdfc_2022)."""
    return StatusList.decode(encoded_list_for(list_credential, entry, credential_issuer), max_bytes)


def encoded_list_for(list_credential: dict, entry: StatusEntry, credential_issuer: object) -> object:
    """`list_from_credential`'s checks alone: the list's `encodedList`, for a
    caller that keeps the decoded list (one list serves many credentials)."""
    if not isinstance(list_credential, dict):
        raise StatusListError("the status list credential is not a JSON object")
    if list_credential.get("id") != entry.list_credential:
        raise StatusListError(f"the status list credential's id is {list_credential.get('id')!r}, "
                              f"the entry names {entry.list_credential!r}")
    types = list_credential.get("type")
    if not (isinstance(types, list) and LIST_CREDENTIAL_TYPE in types):
        raise StatusListError(f"the status list credential's type must include {LIST_CREDENTIAL_TYPE}")
    if _issuer_id(list_credential.get("issuer")) != _issuer_id(credential_issuer):
        raise StatusListError(f"the status list was issued by {_issuer_id(list_credential.get('issuer'))!r}, "
                              f"the credential by {_issuer_id(credential_issuer)!r}")
    subject = list_credential.get("credentialSubject")
    if not (isinstance(subject, dict) and subject.get("type") == LIST_TYPE):
        raise StatusListError(f"the status list credential's subject must be a {LIST_TYPE}")
    if subject.get("statusPurpose") != entry.purpose:
        raise StatusListError(f"the status list is for {subject.get('statusPurpose')!r}, the entry for "
                              f"{entry.purpose!r}")
    return subject.get("encodedList")


def is_revoked(credential: dict, list_credential: dict) -> bool | None:
    """Is the credential's revocation bit set in `list_credential`? None if
    the credential has no revocation entry; StatusListError if anything is
    malformed or does not match."""
    entry = read_entry(credential, REVOCATION)
    if entry is None:
        return None
    status_list = list_from_credential(list_credential, entry, credential.get("issuer"))
    return status_list.get(entry.index)
