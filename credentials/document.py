"""The credential document: a W3C Verifiable Credential 2.0, typed as a
1EdTech Open Badges 3.0 `OpenBadgeCredential`.

`build_credential()` makes the unsigned document from one issuance request;
`make_proof()` makes Attest's anchor proof that issuance attaches once the
batch's Merkle tree is built, beside a W3C Data Integrity proof
(`credentials.dataintegrity`): a proof set, each proof signing the document
without `proof`. The shape, in short:

    {"@context": [VC 2.0, OB 3.0.3, OB extensions, <public URL>/contexts/attest/v1],
     "id": "urn:uuid:…",
     "type": ["VerifiableCredential", "OpenBadgeCredential"], "name": …,
     "issuer": {"id": "did:web:<institution domain>", "type": ["Profile"], "name": …, "url": …},
     "validFrom": RFC 3339, "validUntil": RFC 3339 (optional), "awardedDate": RFC 3339,
     "credentialSubject": {"type": ["AchievementSubject"],
         "identifier": [IdentityObject name, IdentityObject emailAddress (plain or salted sha256)],
         "achievement": {"id", "type": ["Achievement"], "name", "description",
                         "criteria": {"narrative"}, "achievementType"},
         "result": [{"type": ["Result"], "value": grade}] (optional)},
     "credentialSchema": [OB 3.0 JSON schema],
     "credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": "revocation", …},
     "proof": [{"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", …},
               {"type": "AttestEip712MerkleProof2026", …}]}   (see make_proof)

Older credentials have the first two contexts, no status entry and the
anchor proof alone; they keep verifying.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache

import orjson
from eth_utils import to_checksum_address as _to_checksum_address

from credentials.jsonld import OB_V3 as OB_CONTEXT
from credentials.jsonld import VC_V2 as VC_CONTEXT
from credentials.jsonld import credential_contexts

OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
PROOF_TYPE = "AttestEip712MerkleProof2026"


@lru_cache(maxsize=8192)
def to_checksum_address(address: str | bytes) -> str:
    """EIP-55 spelling, cached: a batch names the same two addresses in every
    credential, a verifier sees the same few again and again, and eth_utils'
    pure-Python version dominated both issuing and verifying time."""
    return _to_checksum_address(address)

# Open Badges 3.0 AchievementType vocabulary (extensions start with "ext:").
ACHIEVEMENT_TYPES = (
    "Achievement", "ApprenticeshipCertificate", "Assessment", "Assignment", "AssociateDegree", "Award",
    "Badge", "BachelorDegree", "Certificate", "CertificateOfCompletion", "Certification",
    "CommunityService", "Competency", "Course", "CoCurricular", "Degree", "Diploma", "DoctoralDegree",
    "Fieldwork", "GeneralEducationDevelopment", "JourneymanCertificate", "LearningProgram", "License",
    "Membership", "ProfessionalDoctorate", "QualityAssuranceCredential", "MasterCertificate",
    "MasterDegree", "MicroCredential", "ResearchDoctorate", "SecondarySchoolDiploma",
)


@dataclass(frozen=True)
class IssuerProfile:
    """The issuing institution as a credential names it: its did:web (older
    credentials named the signing key itself, as a did:pkh), name, web address
    and logo, and the key and chain it signs with."""

    name: str
    address: str
    chain_id: int
    url: str | None = None
    did_web: str | None = None
    image: str | None = None

    @property
    def did_pkh(self) -> str:
        return f"did:pkh:eip155:{self.chain_id}:{to_checksum_address(self.address)}"

    @property
    def did(self) -> str:
        return self.did_web or self.did_pkh

    def as_dict(self) -> dict:
        profile = {"id": self.did, "type": ["Profile"], "name": self.name}
        if self.url:
            profile["url"] = self.url
        if self.image:
            profile["image"] = {"id": self.image, "type": "Image"}
        return profile


@dataclass(frozen=True)
class CredentialRequest:
    """One row of the issuance CSV (or one form), already validated."""

    recipient_name: str
    recipient_email: str
    achievement_name: str
    achievement_type: str
    description: str
    awarded_on: date
    valid_until: date | None = None
    grade: str | None = None


def rfc3339(moment: date | datetime) -> str:
    """UTC, second precision, `Z` suffix; a date is its midnight UTC."""
    if type(moment) is date:
        return _date_rfc3339(moment)
    return _rfc3339(moment)


@lru_cache(maxsize=4096)
def _date_rfc3339(day: date) -> str:
    """Dates repeat across a batch (one award day for a whole cohort)."""
    return _rfc3339(day)


def _rfc3339(moment: date | datetime) -> str:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def email_identity(email: str, salt: str | None = None) -> dict:
    """An OB 3.0 IdentityObject for the email: plain, or `sha256$<hex>` of
    email+salt where the institution prefers not to publish addresses."""
    email = email.strip().lower()
    if salt is None:
        return {"type": "IdentityObject", "identityType": "emailAddress", "hashed": False,
                "identityHash": email}
    digest = hashlib.sha256((email + salt).encode()).hexdigest()
    return {"type": "IdentityObject", "identityType": "emailAddress", "hashed": True,
            "identityHash": f"sha256${digest}", "salt": salt}


def achievement_id(request: CredentialRequest, issuer: IssuerProfile) -> str:
    """The same achievement (issuer, name, type) keeps the same id across batches."""
    return _achievement_uuid(f"{issuer.did}|{request.achievement_type}|{request.achievement_name}")


@lru_cache(maxsize=4096)
def _achievement_uuid(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}"


def build_credential(request: CredentialRequest, issuer: IssuerProfile, *,
                     credential_id: str | None = None, hash_email_salt: str | None = None,
                     status: dict | None = None) -> dict:
    """The unsigned credential document for one request; `status` is its
    `credentialStatus` (statuslist.status_entry). The Attest context (for the
    anchor proof's terms) is the one the issuer serves under its public URL."""
    subject = {
        "type": ["AchievementSubject"],
        "identifier": [
            {"type": "IdentityObject", "identityType": "name", "hashed": False,
             "identityHash": request.recipient_name},
            email_identity(request.recipient_email, hash_email_salt),
        ],
        "achievement": {
            "id": achievement_id(request, issuer),
            "type": ["Achievement"],
            "name": request.achievement_name,
            "description": request.description,
            "criteria": {"narrative": request.description},
            "achievementType": request.achievement_type,
        },
    }
    if request.grade:
        subject["result"] = [{"type": ["Result"], "value": request.grade}]
    credential = {
        "@context": _contexts(issuer.url),
        "id": credential_id or f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": request.achievement_name,
        "issuer": issuer.as_dict(),
        "validFrom": rfc3339(request.awarded_on),
        "awardedDate": rfc3339(request.awarded_on),
        "credentialSubject": subject,
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
    }
    if request.valid_until:
        credential["validUntil"] = rfc3339(request.valid_until)
    if status is not None:
        credential["credentialStatus"] = status
    return credential


def document_json(credential: dict) -> str:
    """The stored and exported form of a credential: compact JSON, keys in
    document order, UTF-8 text (not \\u-escaped): exactly what
    `json.dumps(credential, ensure_ascii=False, separators=(",", ":"))` gives
    for what `build_credential` and `make_proof` make (strings, booleans,
    null, integers; never a float), in a ninth of the time (orjson, 3 us
    against 26 us). A value orjson refuses (a lone surrogate, an integer
    beyond 64 bits) goes to the standard library."""
    try:
        return orjson.dumps(credential).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(credential, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=64)
def _context_tuple(public_url: str | None) -> tuple[str, ...]:
    if public_url is None:
        return (VC_CONTEXT, OB_CONTEXT)
    return tuple(credential_contexts(public_url))


def _contexts(public_url: str | None) -> list[str]:
    return list(_context_tuple(public_url))


def make_proof(*, fingerprint: str, signature: str, signer: str, chain_id: int, registry: str,
               merkle_root: str, merkle_path: list[str], created: str,
               transaction_hash: str | None = None, batch: str | None = None) -> dict:
    """The `proof` member. Everything a verifier needs besides the chain:
    the signed fingerprint and EIP-712 domain, and where the batch root is
    anchored (chain id, registry, root, this credential's path, transaction)."""
    signer = to_checksum_address(signer)
    return {
        "type": PROOF_TYPE,
        "created": created,
        "proofPurpose": "assertionMethod",
        "verificationMethod": f"did:pkh:eip155:{chain_id}:{signer}#blockchainAccountId",
        "fingerprint": fingerprint,
        "signature": signature,
        "eip712Domain": {"name": "Attest", "version": "1", "chainId": chain_id,
                         "verifyingContract": to_checksum_address(registry)},
        "anchor": {
            "chainId": chain_id,
            "registry": to_checksum_address(registry),
            "merkleRoot": merkle_root,
            "merklePath": merkle_path,
            "transactionHash": transaction_hash,
            "batch": batch,
        },
    }


def anchor_proof(document: dict) -> dict | None:
    """The credential's anchor proof: its `proof` itself in older credentials,
    the AttestEip712MerkleProof2026 of the proof set in new ones; None when it
    has none (another issuer's credential)."""
    proofs = document.get("proof")
    for proof in proofs if isinstance(proofs, list) else [proofs]:
        if isinstance(proof, dict) and proof.get("type") == PROOF_TYPE:
            return proof
    return None


def did_pkh_parts(value: str) -> tuple[str, str] | None:
    """(chain id, address) as written in `did:pkh:eip155:<chain>:<address>[#…]`, or None."""
    parts = value.split("#", 1)[0].split(":")
    if len(parts) == 5 and parts[:3] == ["did", "pkh", "eip155"]:
        return parts[3], parts[4]
    return None


def signer_from_verification_method(method: str) -> str | None:
    """The address in `did:pkh:eip155:<chain>:<address>#…`, or None."""
    parts = did_pkh_parts(method)
    return parts[1] if parts else None
