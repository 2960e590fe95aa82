"""The institution's Ed25519 keys for Data Integrity proofs, and their key ring.

A key is published in the institution's did:web document as a Multikey:
`publicKeyMultibase` is `z` + base58btc(0xed 0x01 || 32-byte public key),
so it always starts `z6Mk`. Its verification method id is
`<did>#<publicKeyMultibase>`: unique per key without a counter to keep, and
the form Digital Bazaar's libraries give a Multikey by default.

The key ring (`<keys dir>/ed25519-keyring.json`, mode 0600) lists every key
the institution has signed with: the current one with its secret, retired
ones with their public key and the moment they were retired. Retired keys
stay listed so that the credentials they signed keep verifying; their
secrets are dropped at rotation, so a stolen ring cannot sign with them.

With `ATTEST_ED25519_KEY` set (`settings.ed25519_key`: a `secretKeyMultibase`,
`z` + base58btc of 0x80 0x26 || 32-byte seed, or 64 hex digits) that key is
the current one and nothing is written; the ring file, if there is one, still
contributes the keys listed in it. A secret is never printed or logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from credentials.multibase import MultibaseError, decode_base58btc, encode_base58btc

KEYRING_FILE = "ed25519-keyring.json"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
_PUBLIC_PREFIX = b"\xed\x01"  # multicodec ed25519-pub, as a varint
_SECRET_PREFIX = b"\x80\x26"  # multicodec ed25519-priv, as a varint


class Ed25519KeyError(ValueError):
    """A key or key ring that cannot be used, and why."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def seed_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_key_multibase(key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> str:
    """The Multikey `publicKeyMultibase` (`z6Mk…`) of a key or its 32 bytes."""
    raw = key if isinstance(key, bytes) else public_bytes(key)
    if len(raw) != 32:
        raise Ed25519KeyError(f"an Ed25519 public key is 32 bytes, found {len(raw)}")
    return encode_base58btc(_PUBLIC_PREFIX + raw)


def decode_public_key_multibase(value: object) -> bytes:
    """The 32 key bytes of a Multikey `publicKeyMultibase`; Ed25519KeyError saying
    what is wrong (not multibase, not an Ed25519 key, wrong length)."""
    return _decoded_key(value) if isinstance(value, str) else _decode_key(value)


@lru_cache(maxsize=256)
def _decoded_key(value: str) -> bytes:
    """Cached (an error is not): a verifier decodes the same few keys for every credential."""
    return _decode_key(value)


def _decode_key(value: object) -> bytes:
    try:
        raw = decode_base58btc(value, "publicKeyMultibase")
    except MultibaseError as exc:
        raise Ed25519KeyError(str(exc)) from None
    if raw[:2] != _PUBLIC_PREFIX:
        raise Ed25519KeyError(f"publicKeyMultibase is not an Ed25519 key: its multicodec prefix is 0x{raw[:2].hex()}, "
                        "Ed25519 keys have 0xed01")
    if len(raw) != 34:
        raise Ed25519KeyError(f"publicKeyMultibase holds {len(raw) - 2} key bytes, an Ed25519 key has 32")
    return raw[2:]


def load_public_key(value: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    """A public key from an object, its 32 raw bytes or a publicKeyMultibase."""
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, str):
        return _key_from_multibase(value)
    if len(value) != 32:
        raise Ed25519KeyError(f"an Ed25519 public key is 32 bytes, found {len(value)}")
    return Ed25519PublicKey.from_public_bytes(value)


def verify_signature(public_key: Ed25519PublicKey | bytes | str, signature: bytes, message: bytes) -> bool:
    """Does `signature` verify `message` with the key? libsodium (PyNaCl) does
    the arithmetic: 87 us against OpenSSL's 220 us here, and it refuses
    non-canonical signatures and small-order keys, which no honest signer makes."""
    raw = public_key.public_bytes_raw() if isinstance(public_key, Ed25519PublicKey) else \
        decode_public_key_multibase(public_key) if isinstance(public_key, str) else bytes(public_key)
    if len(raw) != 32:
        raise Ed25519KeyError(f"an Ed25519 public key is 32 bytes, found {len(raw)}")
    if len(signature) != 64:
        return False
    try:
        _sodium_key(raw).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


_signers: dict[int, tuple[Ed25519PrivateKey, SigningKey]] = {}


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The Ed25519 signature of `message`, made by libsodium: 45 us against
    OpenSSL's 66 us here, and the same 64 bytes (RFC 8032 signatures are
    deterministic; a property test compares the two)."""
    held = _signers.get(id(key))
    if held is None or held[0] is not key:
        if len(_signers) > 64:
            _signers.clear()
        held = _signers[id(key)] = (key, SigningKey(seed_bytes(key)))
    return held[1].sign(message).signature


@lru_cache(maxsize=256)
def _sodium_key(raw: bytes) -> VerifyKey:
    return VerifyKey(raw)


@lru_cache(maxsize=256)
def _key_from_multibase(value: str) -> Ed25519PublicKey:
    """Cached: a verifier sees the same few institution keys again and again."""
    return Ed25519PublicKey.from_public_bytes(decode_public_key_multibase(value))


def secret_key_multibase(key: Ed25519PrivateKey) -> str:
    """The Multikey `secretKeyMultibase` (`z3u2…`) of a private key."""
    return encode_base58btc(_SECRET_PREFIX + seed_bytes(key))


def decode_secret_key(value: str) -> Ed25519PrivateKey:
    """A private key from a secretKeyMultibase or 64 hex digits (0x optional).
    Errors never repeat the value."""
    text = value.strip()
    if text.startswith("z"):
        try:
            raw = decode_base58btc(text, "the secret key")
        except MultibaseError:
            raise Ed25519KeyError("the secret key is not base58btc multibase") from None
        if raw[:2] != _SECRET_PREFIX or len(raw) != 34:
            raise Ed25519KeyError("the secret key is not an Ed25519 secretKeyMultibase (0x8026 and 32 bytes)")
        seed = raw[2:]
    else:
        hexdigits = text.removeprefix("0x")
        try:
            seed = bytes.fromhex(hexdigits)
        except ValueError:
            raise Ed25519KeyError("the secret key is neither a secretKeyMultibase nor hexadecimal") from None
        if len(seed) != 32:
            raise Ed25519KeyError(f"an Ed25519 secret key is 32 bytes, found {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def verification_method_id(did: str, key: Ed25519PublicKey | Ed25519PrivateKey | bytes | str) -> str:
    """`<did>#<publicKeyMultibase>`."""
    multibase = key if isinstance(key, str) else public_key_multibase(key)
    return f"{did}#{multibase}"


def multikey(did: str, public_multibase: str) -> dict:
    """One Multikey verification method, as it goes in the DID document."""
    return {"id": f"{did}#{public_multibase}", "type": "Multikey", "controller": did,
            "publicKeyMultibase": public_multibase}


def assertion_key(did_document: dict, verification_method: str) -> str | None:
    """The publicKeyMultibase of `verification_method` if `did_document`
    lists it as a Multikey and names it under `assertionMethod` (by id or
    embedded); None otherwise. For verifiers holding a resolved or trusted
    DID document."""
    if not isinstance(did_document, dict) or verification_method.split("#", 1)[0] != did_document.get("id"):
        return None
    named = did_document.get("assertionMethod") or []
    methods = [m for m in did_document.get("verificationMethod") or [] if isinstance(m, dict)]
    methods += [m for m in named if isinstance(m, dict)]
    if not any(m == verification_method or (isinstance(m, dict) and m.get("id") == verification_method)
               for m in named):
        return None
    for method in methods:
        if method.get("id") == verification_method and method.get("type") == "Multikey":
            value = method.get("publicKeyMultibase")
            try:
                decode_public_key_multibase(value)
            except Ed25519KeyError:
                return None
            return value
    return None


@dataclass(frozen=True)
class KeyRecord:
    """One key of the ring. `retired` is None for the current key."""

    public_key_multibase: str
    activated: str | None
    retired: str | None = None

    def was_active(self, moment: str) -> bool:
        """Was this key the current one at `moment` (RFC 3339, UTC `Z`)?
        The times are compared as written, which holds for Attest's own
        second-precision `Z` timestamps."""
        if self.activated and moment < self.activated:
            return False
        return self.retired is None or moment < self.retired

    def as_dict(self) -> dict:
        return {"publicKeyMultibase": self.public_key_multibase, "activated": self.activated,
                "retired": self.retired}


@dataclass(frozen=True)
class KeyRing:
    """The current signing key and every key the ring lists (current first)."""

    signing_key: Ed25519PrivateKey = field(repr=False)
    records: tuple[KeyRecord, ...]

    @property
    def current(self) -> KeyRecord:
        return self.records[0]

    def verification_method(self, did: str) -> str:
        """The id that proofs signed now name."""
        return verification_method_id(did, self.current.public_key_multibase)

    def verification_methods(self, did: str) -> list[dict]:
        """Every listed key as a Multikey, retired ones included."""
        return [multikey(did, r.public_key_multibase) for r in self.records]

    def did_document_entries(self, did: str) -> dict:
        """What the DID document needs for Data Integrity: its contexts, the
        Multikeys, and `assertionMethod` naming all of them (a credential
        signed before a rotation must keep verifying)."""
        methods = self.verification_methods(did)
        return {"@context": ["https://www.w3.org/ns/did/v1", MULTIKEY_CONTEXT],
                "verificationMethod": methods, "assertionMethod": [m["id"] for m in methods]}

    def record_for(self, verification_method: str, did: str) -> KeyRecord | None:
        """The listed key a proof's `verificationMethod` names, if any."""
        for record in self.records:
            if verification_method == verification_method_id(did, record.public_key_multibase):
                return record
        return None


# ----- the ring file ----------------------------------------------------------------

def _read_ring(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
        keys = data["keys"]
        if not isinstance(keys, list) or not keys:
            raise ValueError("no keys")
        for entry in keys:
            decode_public_key_multibase(entry["publicKeyMultibase"])
        return keys
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Ed25519KeyError(f"{path} is not a usable Ed25519 key ring ({type(exc).__name__})") from None


def _write_ring(path: Path, keys: list[dict]) -> None:
    """Atomically replace the ring: a 0600 temporary file renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"version": 1, "keys": keys}, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    """One writer at a time (two workers starting together, or a rotation)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(keys_dir / (KEYRING_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _new_entry(key: Ed25519PrivateKey, now: str) -> dict:
    return {"publicKeyMultibase": public_key_multibase(key), "activated": now, "retired": None,
            "secretKeyMultibase": secret_key_multibase(key)}


def _records(entries: list[dict]) -> list[KeyRecord]:
    return [KeyRecord(e["publicKeyMultibase"], e.get("activated"), e.get("retired")) for e in entries]


def _ring_from_file(entries: list[dict], path: Path) -> KeyRing:
    current = [e for e in entries if e.get("retired") is None and e.get("secretKeyMultibase")]
    if len(current) != 1:
        raise Ed25519KeyError(f"{path} must list exactly one current key with its secret, found {len(current)}")
    key = decode_secret_key(current[0]["secretKeyMultibase"])
    if public_key_multibase(key) != current[0]["publicKeyMultibase"]:
        raise Ed25519KeyError(f"{path}: the current key's secret does not match its publicKeyMultibase")
    others = [e for e in entries if e is not current[0]]
    return KeyRing(key, tuple(_records(current + others)))


def load_or_create_keyring(keys_dir: Path, secret: str | None = None) -> KeyRing:
    """The institution's key ring: `secret` (the settings' ATTEST_ED25519_KEY)
    as the current key, else the ring file, which is created (one fresh key,
    0600) on first use."""
    path = keys_dir / KEYRING_FILE
    if secret:
        key = decode_secret_key(secret)
        listed = _read_ring(path) if path.exists() else []
        mine = public_key_multibase(key)
        records = _records(listed)
        own = next((r for r in records if r.public_key_multibase == mine), KeyRecord(mine, None))
        others = [r for r in records if r.public_key_multibase != mine]
        return KeyRing(key, (replace(own, retired=None), *others))
    if not path.exists():
        with _locked(keys_dir):
            if not path.exists():
                _write_ring(path, [_new_entry(Ed25519PrivateKey.generate(), _now())])
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # someone loosened it: tighten rather than refuse, as keys.py does
    return _ring_from_file(_read_ring(path), path)


def rotate(keys_dir: Path, now: str | None = None) -> KeyRing:
    """Retire the current key (its secret is dropped, its public key stays
    listed) and make a fresh one current. Returns the new ring."""
    now = now or _now()
    path = keys_dir / KEYRING_FILE
    with _locked(keys_dir):
        entries = _read_ring(path) if path.exists() else []
        retired = []
        for entry in entries:
            if entry.get("retired") is None:
                entry = {k: v for k, v in entry.items() if k != "secretKeyMultibase"} | {"retired": now}
            retired.append(entry)
        entries = [_new_entry(Ed25519PrivateKey.generate(), now), *retired]
        _write_ring(path, entries)
    return _ring_from_file(entries, path)
